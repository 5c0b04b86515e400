import TestSupport

/// The run as a picture, drawn with the project's one SVG writer: published and stored
/// events per second over time, each fault a tinted band from when it began to when it
/// ended, labelled below the plot with its kind and target.
enum TimelineSVG {
    static func render(samples: [Sample], faults: [FaultRecord], phases: [(name: String, start: Double, end: Double)],
                       title: String) -> String {
        var acked: [(Double, Double)] = []
        var stored: [(Double, Double)] = []
        for (a, b) in zip(samples, samples.dropFirst()) where b.t > a.t {
            acked.append((b.t, Double(b.acked - a.acked) / (b.t - a.t)))
            if let sa = a.stored, let sb = b.stored { stored.append((b.t, Double(sb - sa) / (b.t - a.t))) }
        }
        let tMax = max(samples.last?.t ?? 1, phases.map(\.end).max() ?? 1, 1)
        let yMax = max(1, (acked + stored).map(\.1).max() ?? 1) * 1.1
        let plot = SVGCanvas.Plot(left: 70, top: 40, width: 1100, height: 230, xMax: tMax, yMax: yMax)
        let labelRows = 8
        var canvas = SVGCanvas(width: 1200, height: plot.top + plot.height + 50 + Double(labelRows) * 15)
        for phase in phases {
            canvas.rect(plot.x(phase.start), plot.top, plot.x(phase.end) - plot.x(phase.start), plot.height, fill: "#f6f6f6")
            canvas.text(plot.x(phase.start) + 3, plot.top + 12, phase.name, size: 10, colour: "#888")
        }
        for record in faults {
            guard let began = record.began else { continue }
            let x0 = plot.x(began)
            canvas.rect(x0, plot.top, max(2, plot.x(record.ended ?? began) - x0), plot.height, fill: tint(record.episode.kind))
        }
        canvas.axes(plot, title: title, xLabel: "seconds since start", yLabel: "events/s: stored (green), published (grey, dashed)")
        canvas.polyline(acked, in: plot, colour: "#999", dashed: true)
        canvas.polyline(stored, in: plot, colour: "#1a7f37")
        for (row, record) in faults.enumerated() {
            guard let began = record.began else { continue }
            let labelY = plot.top + plot.height + 48 + Double(row % labelRows) * 15
            canvas.line(plot.x(began), plot.top + plot.height, plot.x(began), labelY - 10, colour: colour(record.episode.kind))
            canvas.text(plot.x(began) + 2, labelY, "#\(record.episode.index) \(record.episode.label)", size: 10, colour: colour(record.episode.kind))
        }
        return canvas.document
    }

    /// Processes red, servers orange, links blue.
    private static func colour(_ kind: FaultKind) -> String {
        switch kind {
        case .listenerKill, .listenerStop, .listenerTerm, .producerKill, .producerStop, .producerDiskFail: return "#cf222e"
        case .redisRestart, .redisWipe, .redisSlotMigrate, .redisFailover, .redisPause, .postgresRestart, .postgresFastRestart, .postgresPause: return "#bc4c00"
        case .linkReset, .linkBlackhole, .linkLatency, .linkCut: return "#0969da"
        }
    }

    /// The band behind the curves: the kind's colour, pale.
    private static func tint(_ kind: FaultKind) -> String {
        switch kind {
        case .listenerKill, .listenerStop, .listenerTerm, .producerKill, .producerStop, .producerDiskFail: return "#fbe3e4"
        case .redisRestart, .redisWipe, .redisSlotMigrate, .redisFailover, .redisPause, .postgresRestart, .postgresFastRestart, .postgresPause: return "#fdebd9"
        case .linkReset, .linkBlackhole, .linkLatency, .linkCut: return "#e3eefc"
        }
    }
}
