import Foundation
import TestSupport

/// The e2e run's picture, written next to its JSON: stored events per second over time
/// for each pass, publish -> stored latency by percentile, and, when several listener
/// counts ran, their rate, Redis commands and CPU per distinct event as bars.
enum E2EChart {
    /// Percentiles of the latency curve, spaced evenly on a "nines" scale.
    static let percentiles: [Double] = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]

    private static let colours = ["throughput": "#1f77b4", "reads": "#9467bd", "latency": "#2ca02c", "durable": "#d62728"]
    /// The CPU bars' process kinds, in the scaling table's order.
    private static let kinds = [("producer", "#1f77b4"), ("listeners", "#ff7f0e"), ("redis", "#d62728"), ("postgres", "#2ca02c")]

    static func svg(_ outcome: E2EOutcome, title: String) -> String {
        var canvas = SVGCanvas(width: 1100, height: outcome.scaling.isEmpty ? 400 : 780)
        canvas.text(20, 24, title, size: 14)
        storedRates(outcome, on: &canvas)
        latency(outcome, on: &canvas)
        if !outcome.scaling.isEmpty { scaling(outcome.scaling, on: &canvas) }
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

    /// A second row: rate by listener count against 0.9x the smallest count's, Redis commands
    /// per distinct event, and CPU per distinct event by process kind, grouped by count.
    private static func scaling(_ rows: [PassResult], on canvas: inout SVGCanvas) {
        let counts = rows.map { "\($0.listeners)" }
        let rates = rows.map(\.distinctPerSecond)
        let floor = 0.9 * rates[0]
        let ratePlot = SVGCanvas.Plot(left: 80, top: 460, width: 280, height: 250, xMax: 1, yMax: max(rates.max() ?? 1, floor) * 1.15)
        canvas.axes(ratePlot, title: "stored per second", xLabel: "listeners", yLabel: "distinct events/s", xEnds: false)
        bars(rates.map { [$0] }, groups: counts, colours: [colours["throughput"]!], in: ratePlot, on: &canvas)
        canvas.line(ratePlot.left, ratePlot.y(floor), ratePlot.left + ratePlot.width, ratePlot.y(floor), colour: "#d62728", dashed: true)
        let legendY = ratePlot.top + ratePlot.height + 45
        canvas.line(ratePlot.left + 8, legendY, ratePlot.left + 28, legendY, colour: "#d62728", dashed: true)
        canvas.text(ratePlot.left + 34, legendY + 4, "bar: 0.9× the \(counts[0])-listener rate", size: 10, colour: "#444")

        let commands = rows.map(\.redisCommandsPerDistinct)
        let commandPlot = SVGCanvas.Plot(left: 440, top: 460, width: 240, height: 250, xMax: 1, yMax: (commands.max() ?? 1) * 1.15)
        canvas.axes(commandPlot, title: "Redis commands", xLabel: "listeners", yLabel: "per distinct event", xEnds: false)
        bars(commands.map { [$0] }, groups: counts, colours: ["#8c564b"], in: commandPlot, on: &canvas)

        let cpu = rows.map { r in [r.producerCPU, r.listenerCPU.reduce(0, +), r.redisCPU, r.postgresCPU].map(r.microsPerDistinct) }
        let cpuPlot = SVGCanvas.Plot(left: 760, top: 460, width: 300, height: 250, xMax: 1, yMax: (cpu.flatMap { $0 }.max() ?? 1) * 1.15)
        canvas.axes(cpuPlot, title: "CPU by process", xLabel: "listeners", yLabel: "µs per distinct event", xEnds: false)
        bars(cpu, groups: counts, colours: kinds.map(\.1), in: cpuPlot, on: &canvas)
        for (index, (kind, colour)) in kinds.enumerated() {
            let x = cpuPlot.left + 8 + Double(index) * 72
            canvas.rect(x, cpuPlot.top + cpuPlot.height + 40, 10, 10, fill: colour)
            canvas.text(x + 14, cpuPlot.top + cpuPlot.height + 49, kind, size: 10, colour: "#444")
        }
    }

    /// Bars grouped along x: `values[g][s]` is series `s` of group `g`, in `colours[s]`, its
    /// value written above it; each group named under the axis.
    private static func bars(_ values: [[Double]], groups: [String], colours: [String], in plot: SVGCanvas.Plot,
                             on canvas: inout SVGCanvas) {
        let groupWidth = plot.width / Double(max(groups.count, 1))
        let barWidth = groupWidth * 0.7 / Double(max(colours.count, 1))
        for (g, group) in values.enumerated() {
            for (s, value) in group.enumerated() {
                let x = plot.left + groupWidth * (Double(g) + 0.15) + barWidth * Double(s)
                canvas.rect(x + 1, plot.y(value), barWidth - 2, plot.y(0) - plot.y(value), fill: colours[s])
                canvas.text(x + barWidth / 2, plot.y(value) - 4, SVGCanvas.short(value), size: 9, anchor: "middle", colour: "#333")
            }
            canvas.text(plot.left + groupWidth * (Double(g) + 0.5), plot.top + plot.height + 16, groups[g], size: 10,
                        anchor: "middle", colour: "#666")
        }
    }
}
