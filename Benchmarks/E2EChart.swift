import Foundation
import TestSupport

/// The e2e run's picture, written next to its JSON: stored events per second over time
/// for each pass, and publish -> stored latency by percentile.
enum E2EChart {
    /// Percentiles of the latency curve, spaced evenly on a "nines" scale.
    static let percentiles: [Double] = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]

    private static let colours = ["throughput": "#1f77b4", "reads": "#9467bd", "latency": "#2ca02c", "durable": "#d62728"]

    static func svg(_ outcome: E2EOutcome, title: String) -> String {
        var canvas = SVGCanvas(width: 1100, height: 400)
        canvas.text(20, 24, title, size: 14)
        storedRates(outcome, on: &canvas)
        latency(outcome, on: &canvas)
        return canvas.document
    }

    /// Rows per second over windows of about a second (shorter for a short pass, so even a
    /// quick run draws a curve), from the cumulative samples.
    static func ratePerSecond(_ samples: [(seconds: Double, stored: Int)]) -> [(Double, Double)] {
        var out: [(Double, Double)] = samples.first.map { [($0.seconds, 0)] } ?? []
        let span = (samples.last?.seconds ?? 0) - (samples.first?.seconds ?? 0)
        let window = min(max(span / 20, 0.1), 1)
        var windowStart = samples.first
        for sample in samples {
            guard let start = windowStart, sample.seconds - start.seconds >= window else { continue }
            out.append((sample.seconds, Double(sample.stored - start.stored) / (sample.seconds - start.seconds)))
            windowStart = sample
        }
        return out
    }

    private static func storedRates(_ outcome: E2EOutcome, on canvas: inout SVGCanvas) {
        let series = outcome.storedSeries.map { ($0.pass, ratePerSecond($0.samples)) }
        let xMax = series.flatMap { $0.1.map(\.0) }.max() ?? 1
        let yMax = (series.flatMap { $0.1.map(\.1) }.max() ?? 1) * 1.1
        let plot = SVGCanvas.Plot(left: 80, top: 60, width: 520, height: 270, xMax: xMax, yMax: yMax)
        canvas.axes(plot, title: "distinct events stored per second, each pass", xLabel: "seconds since the pass began",
                    yLabel: "events/s")
        for (index, (pass, points)) in series.enumerated() {
            let colour = colours[pass] ?? "#555"
            canvas.polyline(points, in: plot, colour: colour)
            canvas.text(plot.left + plot.width - 4, plot.top + 14 + Double(index) * 14, pass, size: 11, anchor: "end", colour: colour)
        }
    }

    private static func latency(_ outcome: E2EOutcome, on canvas: inout SVGCanvas) {
        guard !outcome.latencyCurve.isEmpty else { return }
        // x is -log10(1 - p/100): 50 % at 0.3, 99 % at 2, 99.99 % at 4.
        let points = outcome.latencyCurve.map { (-log10(1 - $0.percentile / 100), $0.ms) }
        let plot = SVGCanvas.Plot(left: 700, top: 60, width: 360, height: 270, xMax: 4, yMax: (points.map(\.1).max() ?? 1) * 1.1)
        canvas.axes(plot, title: "publish -> stored latency (latency pass)", xLabel: "percentile", yLabel: "ms", xEnds: false)
        canvas.polyline(points, in: plot, colour: colours["latency"]!)
        for (percentile, (x, y)) in zip(outcome.latencyCurve.map(\.percentile), points)
        where [50, 90, 99, 99.9, 99.99].contains(percentile) {
            let name = "p" + String(percentile).replacingOccurrences(of: ".0", with: "")
            canvas.text(plot.x(x), plot.top + plot.height + 16, name, size: 10, anchor: "middle", colour: "#666")
            canvas.text(plot.x(x), plot.y(y) - 6, "\(SVGCanvas.short(y)) ms", size: 10, anchor: "middle", colour: "#333")
        }
    }
}
