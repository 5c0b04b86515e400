/// A bad setting: the program exits non-zero at once with this one line.
public struct SettingError: Error, CustomStringConvertible {
    public let name: String
    public let problem: String
    public init(_ name: String, _ problem: String) {
        self.name = name
        self.problem = problem
    }
    public var description: String { "invalid setting \(name): \(problem)" }
}
