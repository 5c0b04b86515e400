import Synchronization

/// A monotonically increasing count, shared by every loop thread: one relaxed atomic add
/// per batch on the hot path, read only when /metrics is scraped.
public final class Counter: Sendable {
    public let name: String
    public let help: String
    private let value = Atomic<Int>(0)

    init(name: String, help: String) {
        self.name = name
        self.help = help
    }

    /// Adds `amount` (default 1).
    @inlinable public func add(_ amount: Int = 1) { increment(amount) }

    @usableFromInline func increment(_ amount: Int) {
        value.add(amount, ordering: .relaxed)
    }

    /// The current count.
    public var count: Int { value.load(ordering: .relaxed) }
}

/// A value that goes up and down (connected clients, ring occupancy).
public final class Gauge: Sendable {
    public let name: String
    public let help: String
    private let value = Atomic<Int>(0)

    init(name: String, help: String) {
        self.name = name
        self.help = help
    }

    public func set(_ newValue: Int) { value.store(newValue, ordering: .relaxed) }
    public func add(_ delta: Int) { value.add(delta, ordering: .relaxed) }
    public var current: Int { value.load(ordering: .relaxed) }
}

/// A Prometheus histogram of durations: cumulative buckets by upper bound, a sum and a
/// count. Observed a batch at a time under one lock, so the hot path pays one lock per
/// batch, not per event.
public final class DurationHistogram: Sendable {
    public let name: String
    public let help: String
    /// Upper bounds in seconds, ascending.
    public let bounds: [Double]
    @usableFromInline let boundsMicros: [Int64]
    @usableFromInline let state: Mutex<(buckets: [Int], sumMicros: Int64, count: Int)>

    init(name: String, help: String, bounds: [Double]) {
        self.name = name
        self.help = help
        self.bounds = bounds
        boundsMicros = bounds.map { Int64(($0 * 1_000_000).rounded()) }
        state = Mutex((Array(repeating: 0, count: bounds.count), 0, 0))
    }

    /// Records durations given in microseconds (negative ones count as zero: clocks of
    /// two machines may disagree a little).
    ///
    /// Inlinable, so it is specialized for the caller's sequence: unspecialized, every
    /// element read through a lazy wrapper of an array heap-allocates its accessor
    /// coroutine's frame (one malloc per observed event).
    @inlinable
    public func observe(micros: some Sequence<Int64>) {
        state.withLock { state in
            for value in micros {
                let v = max(value, 0)
                if let bucket = boundsMicros.firstIndex(where: { v <= $0 }) { state.buckets[bucket] += 1 }
                state.sumMicros += v
                state.count += 1
            }
        }
    }

    /// Observations so far.
    public var count: Int { state.withLock { $0.count } }

    func render(labels inner: String) -> String {
        let (buckets, sumMicros, count) = state.withLock { ($0.buckets, $0.sumMicros, $0.count) }
        let prefix = inner.isEmpty ? "" : inner + ","
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative = 0
        for (bound, n) in zip(bounds, buckets) {
            cumulative += n
            out += "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(count)\n"
        let braces = inner.isEmpty ? "" : "{\(inner)}"
        out += "\(name)_sum\(braces) \(Double(sumMicros) / 1_000_000)\n\(name)_count\(braces) \(count)\n"
        return out
    }
}

/// The metrics of one process, rendered in the Prometheus text exposition format
/// (version 0.0.4) with the same labels on every series.
public final class MetricsRegistry: Sendable {
    private let labels: String
    private let entries = Mutex<[(kind: String, name: String, help: String, read: @Sendable () -> Int)]>([])
    private let histograms = Mutex<[DurationHistogram]>([])

    /// `labels` are attached to every series, e.g. `["instance": "listener-a"]`.
    public init(labels: [(String, String)] = []) {
        self.labels = labels.isEmpty ? "" :
            "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// Registers a counter; `name` should end in `_total`.
    public func counter(_ name: String, help: String) -> Counter {
        let counter = Counter(name: name, help: help)
        entries.withLock { $0.append(("counter", name, help, { counter.count })) }
        return counter
    }

    /// Registers a gauge.
    public func gauge(_ name: String, help: String) -> Gauge {
        let gauge = Gauge(name: name, help: help)
        entries.withLock { $0.append(("gauge", name, help, { gauge.current })) }
        return gauge
    }

    /// Registers a gauge whose value is computed when scraped.
    public func gauge(_ name: String, help: String, read: @escaping @Sendable () -> Int) {
        entries.withLock { $0.append(("gauge", name, help, read)) }
    }

    /// Registers a histogram of durations with `bounds` (seconds, ascending).
    public func histogram(_ name: String, help: String, bounds: [Double]) -> DurationHistogram {
        let histogram = DurationHistogram(name: name, help: help, bounds: bounds)
        histograms.withLock { $0.append(histogram) }
        return histogram
    }

    /// The text exposition of every metric.
    public func render() -> String {
        var out = ""
        for entry in entries.withLock({ $0 }) {
            out += "# HELP \(entry.name) \(entry.help)\n# TYPE \(entry.name) \(entry.kind)\n"
            out += "\(entry.name)\(labels) \(entry.read())\n"
        }
        let inner = labels.isEmpty ? "" : String(labels.dropFirst().dropLast())
        for histogram in histograms.withLock({ $0 }) { out += histogram.render(labels: inner) }
        return out
    }

    /// The content type Prometheus expects for `render()`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
