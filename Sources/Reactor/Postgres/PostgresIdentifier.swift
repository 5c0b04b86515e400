/// Helpers for SQL that names tables and columns.
public enum PostgresIdentifier {
    /// `name` as a quoted SQL identifier (`"` doubled), so any table name is safe to splice.
    public static func quoted(_ name: String) -> String {
        var quoted = "\""
        for character in name {
            if character == "\"" { quoted.append("\"") }
            quoted.append(character)
        }
        quoted.append("\"")
        return quoted
    }
}
