import Foundation

/// The run as a picture: published and stored events per second over time, each fault a
/// shaded band from when it began to when it ended, labelled with its kind.
enum TimelineSVG {
    static func render(samples: [Sample], faults: [FaultRecord], phases: [(name: String, start: Double, end: Double)],
                       title: String) -> String {
        let width = 1200.0, height = 420.0
        let left = 60.0, right = 20.0, top = 40.0, bottom = 150.0
        let plotW = width - left - right, plotH = height - top - bottom
        let tMax = max(samples.last?.t ?? 1, phases.map(\.end).max() ?? 1, 1)
        var acked: [(Double, Double)] = []
        var stored: [(Double, Double)] = []
        for (a, b) in zip(samples, samples.dropFirst()) where b.t > a.t {
            acked.append((b.t, Double(b.acked - a.acked) / (b.t - a.t)))
            if let sa = a.stored, let sb = b.stored { stored.append((b.t, Double(sb - sa) / (b.t - a.t))) }
        }
        let yMax = max(1, (acked + stored).map(\.1).max() ?? 1) * 1.1
        func x(_ t: Double) -> Double { left + plotW * t / tMax }
        func y(_ v: Double) -> Double { top + plotH * (1 - max(0, v) / yMax) }
        func fmt(_ v: Double) -> String { String(Int((v * 10).rounded()) / 10) }

        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(escape(title))</text>\n"
        for phase in phases {
            svg += "<rect x=\"\(fmt(x(phase.start)))\" y=\"\(top)\" width=\"\(fmt(max(1, x(phase.end) - x(phase.start))))\" height=\"\(plotH)\" fill=\"#f4f4f4\"/>"
            svg += "<text x=\"\(fmt(x(phase.start) + 3))\" y=\"\(top + 12)\" fill=\"#888\">\(escape(phase.name))</text>\n"
        }
        for (row, record) in faults.enumerated() {
            guard let began = record.began else { continue }
            let ended = record.ended ?? began
            let colour = Self.colour(record.episode.kind)
            let x0 = x(began), w = max(2, x(ended) - x0)
            svg += "<rect x=\"\(fmt(x0))\" y=\"\(top)\" width=\"\(fmt(w))\" height=\"\(plotH)\" fill=\"\(colour)\" fill-opacity=\"0.18\"/>"
            let labelY = top + plotH + 14 + Double(row % 8) * 16
            svg += "<line x1=\"\(fmt(x0))\" y1=\"\(top + plotH)\" x2=\"\(fmt(x0))\" y2=\"\(fmt(labelY - 10))\" stroke=\"\(colour)\"/>"
            svg += "<text x=\"\(fmt(x0 + 2))\" y=\"\(fmt(labelY))\" fill=\"\(colour)\">\(escape(record.episode.label))</text>\n"
        }
        svg += "<line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\" stroke=\"black\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let v = yMax * Double(i) / 4
            svg += "<text x=\"\(left - 4)\" y=\"\(fmt(y(v) + 4))\" text-anchor=\"end\">\(Int(v))</text>"
        }
        let step = tMax > 120 ? 30.0 : 10.0
        var tick = 0.0
        while tick <= tMax {
            svg += "<text x=\"\(fmt(x(tick)))\" y=\"\(fmt(top + plotH + 12 + 8 * 16))\" text-anchor=\"middle\">\(Int(tick))s</text>"
            tick += step
        }
        svg += "\n" + polyline(acked.map { (x($0.0), y($0.1)) }, colour: "#999", dash: true)
        svg += polyline(stored.map { (x($0.0), y($0.1)) }, colour: "#1a7f37", dash: false)
        svg += "<text x=\"\(left + plotW - 260)\" y=\"20\" fill=\"#1a7f37\">stored/s</text>"
        svg += "<text x=\"\(left + plotW - 190)\" y=\"20\" fill=\"#999\">published (acked)/s</text>\n"
        svg += "</svg>\n"
        return svg
    }

    private static func colour(_ kind: FaultKind) -> String {
        switch kind {
        case .listenerKill, .listenerStop, .listenerTerm, .producerKill: return "#cf222e"
        case .redisRestart, .redisWipe, .postgresRestart, .postgresFastRestart: return "#bc4c00"
        case .linkReset, .linkBlackhole, .linkLatency, .linkCut: return "#0969da"
        }
    }

    private static func polyline(_ points: [(Double, Double)], colour: String, dash: Bool) -> String {
        guard !points.isEmpty else { return "" }
        let text = points.map { "\(Int($0.0)),\(Int($0.1))" }.joined(separator: " ")
        return "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"\(dash ? " stroke-dasharray=\"4 3\"" : "") points=\"\(text)\"/>\n"
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
