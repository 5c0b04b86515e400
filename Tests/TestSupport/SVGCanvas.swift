/// A small SVG writer for the pictures the benchmarks and tools leave next to their JSON
/// reports: plot areas with axes, polylines, bars and labels. Text is escaped once, here.
public struct SVGCanvas {
    public let width: Double
    public let height: Double
    private var body = ""

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// A plot area: maps data coordinates into a rectangle of the canvas.
    public struct Plot {
        public let left, top, width, height: Double
        public let xMax, yMax: Double

        public init(left: Double, top: Double, width: Double, height: Double, xMax: Double, yMax: Double) {
            self.left = left
            self.top = top
            self.width = width
            self.height = height
            self.xMax = xMax > 0 ? xMax : 1
            self.yMax = yMax > 0 ? yMax : 1
        }

        public func x(_ value: Double) -> Double { left + width * min(max(value, 0), xMax) / xMax }
        public func y(_ value: Double) -> Double { top + height * (1 - min(max(value, 0), yMax) / yMax) }
    }

    public mutating func text(_ x: Double, _ y: Double, _ text: String, size: Int = 11, anchor: String = "start",
                              colour: String = "#222") {
        body += "<text x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\" fill=\"\(colour)\">"
            + Self.escape(text) + "</text>\n"
    }

    public mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String) {
        body += "<rect x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(w, 0)))\" height=\"\(Self.n(max(h, 0)))\" fill=\"\(fill)\"/>\n"
    }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, colour: String = "#999", dashed: Bool = false) {
        body += "<line x1=\"\(Self.n(x1))\" y1=\"\(Self.n(y1))\" x2=\"\(Self.n(x2))\" y2=\"\(Self.n(y2))\" stroke=\"\(colour)\""
            + (dashed ? " stroke-dasharray=\"4 3\"" : "") + "/>\n"
    }

    /// Axes with a title, `ticks` labelled gridlines on y, and x labels at the ends.
    public mutating func axes(_ plot: Plot, title: String, xLabel: String, yLabel: String, ticks: Int = 4, xEnds: Bool = true) {
        text(plot.left, plot.top - 8, title, size: 13)
        for i in 0...ticks {
            let value = plot.yMax * Double(i) / Double(ticks)
            line(plot.left, plot.y(value), plot.left + plot.width, plot.y(value), colour: "#e4e4e4")
            text(plot.left - 6, plot.y(value) + 4, Self.short(value), size: 10, anchor: "end", colour: "#666")
        }
        line(plot.left, plot.top + plot.height, plot.left + plot.width, plot.top + plot.height, colour: "#444")
        line(plot.left, plot.top, plot.left, plot.top + plot.height, colour: "#444")
        text(plot.left + plot.width / 2, plot.top + plot.height + 30, xLabel, size: 11, anchor: "middle", colour: "#444")
        if xEnds {
            text(plot.left, plot.top + plot.height + 16, "0", size: 10, anchor: "middle", colour: "#666")
            text(plot.left + plot.width, plot.top + plot.height + 16, Self.short(plot.xMax), size: 10, anchor: "middle", colour: "#666")
        }
        text(plot.left + plot.width, plot.top - 8, yLabel, size: 11, anchor: "end", colour: "#444")
    }

    public mutating func polyline(_ points: [(Double, Double)], in plot: Plot, colour: String, dashed: Bool = false) {
        guard !points.isEmpty else { return }
        let coordinates = points.map { "\(Self.n(plot.x($0.0))),\(Self.n(plot.y($0.1)))" }.joined(separator: " ")
        body += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"" + (dashed ? " stroke-dasharray=\"5 3\"" : "")
            + " points=\"\(coordinates)\"/>\n"
    }

    /// The finished document.
    public var document: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" font-family=\"sans-serif\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n"
    }

    /// A number with one decimal at most, for coordinates.
    static func n(_ value: Double) -> String {
        let tenths = (value * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
    }

    /// 1234567 -> "1.2M", 45000 -> "45k", 0.5 -> "0.5".
    public static func short(_ value: Double) -> String {
        if value >= 1_000_000 { return n(value / 1_000_000) + "M" }
        if value >= 1_000 { return n(value / 1_000) + "k" }
        return n(value)
    }

    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
