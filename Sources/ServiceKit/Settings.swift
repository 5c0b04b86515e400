import Glibc

/// Every setting is an environment variable and a `--kebab-case` flag of the same name;
/// the flag wins. These helpers resolve one setting from (flag, environment, default)
/// and validate it, so both programs refuse bad values the same way.
public enum Settings {
    /// The process environment (a seam for tests).
    nonisolated(unsafe) public static var environment: [String: String] = processEnvironment()

    /// `environ` as a dictionary, read without Foundation (which would bring ICU into every
    /// program that reads a setting).
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }

    /// The flag spelling of an environment name: HTTP_PORT -> --http-port.
    public static func flagName(_ env: String) -> String {
        "--" + String(env.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    /// The raw text of a setting: the flag's value if given, else the environment's.
    public static func raw(_ flag: String?, env: String) -> String? {
        if let flag { return flag }
        if let value = environment[env], !value.isEmpty { return value }
        return nil
    }

    /// A TCP port, 1-65535.
    public static func port(_ flag: String?, env: String, default value: Int) throws -> Int {
        guard let text = raw(flag, env: env) else { return value }
        guard let port = Int(text.trimmingBlanks), (1...65535).contains(port) else {
            throw SettingError(env, "'\(text)' is not a port (1-65535)")
        }
        return port
    }

    /// A whole number within `range`.
    public static func integer(_ flag: String?, env: String, default value: Int, range: ClosedRange<Int>,
                               unit: String = "") throws -> Int {
        guard let text = raw(flag, env: env) else { return value }
        guard let number = Int(text.trimmingBlanks) else {
            throw SettingError(env, "'\(text)' is not a whole number")
        }
        guard range.contains(number) else {
            throw SettingError(env, "\(number)\(unit) is out of range (\(range.lowerBound)...\(range.upperBound)\(unit))")
        }
        return number
    }

    /// A duration in milliseconds, never negative.
    public static func milliseconds(_ flag: String?, env: String, default value: Int,
                                    range: ClosedRange<Int> = 0...Int(Int32.max)) throws -> Int {
        try integer(flag, env: env, default: value, range: range, unit: " ms")
    }

    /// A bind address: an IPv4/IPv6 literal or a host name.
    public static func host(_ flag: String?, env: String, default value: String) throws -> String {
        guard let text = raw(flag, env: env) else { return value }
        let trimmed = text.trimmingBlanks
        guard !trimmed.isEmpty, !trimmed.contains(" "), !trimmed.contains("/") else {
            throw SettingError(env, "'\(text)' is not a host name or address")
        }
        return trimmed
    }

    /// Free text, with a default.
    public static func string(_ flag: String?, env: String, default value: String) -> String {
        raw(flag, env: env) ?? value
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingBlanks: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !blank($0) }), let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }
}
