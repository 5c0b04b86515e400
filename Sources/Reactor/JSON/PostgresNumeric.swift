/// The range of PostgreSQL's `numeric`, which every `jsonb` number goes through
/// (`numeric_in`), decided from the literal's text without converting it.
///
/// PostgreSQL 15 (`set_var_from_str` and `make_result` in numeric.c) refuses a literal when
/// - its exponent is at least `INT_MAX / 2` in magnitude (read with `strtol`),
/// - its display scale, the digits after the point minus the exponent (at least 0), is above
///   16383 (`NUMERIC_DSCALE_MASK`), even when the value is zero (`0e-16384`), or
/// - it is not zero and its weight, the base-10000 position of its first nonzero digit, is
///   above 32767 (an `int16`): the first nonzero digit sits at 10^131071 at most.
/// A zero's weight is 0 whatever its exponent, so `0e131072` is fine. The weight's lower
/// bound can never be reached: the scale limit stops small numbers first.
public enum PostgresNumeric {
    /// Largest exponent magnitude `numeric_in` reads (PostgreSQL 15 refuses `>= INT_MAX / 2`).
    public static let maxExponent = Int(Int32.max) / 2 - 1
    /// Most digits after the decimal point, after applying the exponent.
    public static let maxScale = 0x3FFF
    /// Highest decimal position of the first nonzero digit: 4 * 32767 + 3.
    public static let maxLeadingDigitPosition = 4 * Int(Int16.max) + 3

    /// Why the number literal in `bytes[start..<end]` (already valid JSON) cannot be stored,
    /// or nil when PostgreSQL takes it. `intEnd` and `fractionEnd` are where the integer and
    /// fraction digits end (equal when there is no fraction).
    static func problem(_ bytes: UnsafeRawBufferPointer, start: Int, intEnd: Int, fractionEnd: Int,
                        end: Int) -> String? {
        let intStart = bytes[start] == UInt8(ascii: "-") ? start + 1 : start
        let intDigits = intEnd - intStart
        let fractionStart = fractionEnd > intEnd ? intEnd + 1 : intEnd
        let fractionDigits = fractionEnd - fractionStart
        var exponent = 0
        if fractionEnd < end {
            var i = fractionEnd + 1
            var negative = false
            if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                negative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            while i < end {
                exponent = exponent * 10 + Int(bytes[i] &- 0x30)
                if exponent > maxExponent {
                    return "the number \(literal(bytes, start, end)), whose exponent is beyond the ±\(maxExponent) "
                        + "that PostgreSQL numeric reads"
                }
                i += 1
            }
            if negative { exponent = -exponent }
        } else if intDigits <= maxLeadingDigitPosition + 1, fractionDigits <= maxScale {
            return nil  // the common case: no exponent, and not hundreds of kilobytes of digits
        }
        let scale = max(0, fractionDigits - exponent)
        if scale > maxScale {
            return "the number \(literal(bytes, start, end)), which has \(scale) digits after the decimal point; "
                + "PostgreSQL numeric keeps at most \(maxScale)"
        }
        // JSON allows no leading zeros, so the integer part is "0" or starts with 1-9.
        var leading: Int?
        if bytes[intStart] != UInt8(ascii: "0") {
            leading = intDigits - 1 + exponent
        } else if let first = (fractionStart..<fractionEnd).first(where: { bytes[$0] != UInt8(ascii: "0") }) {
            leading = fractionStart - first - 1 + exponent
        }
        if let leading, leading > maxLeadingDigitPosition {
            return "the number \(literal(bytes, start, end)), which is 1e\(maxLeadingDigitPosition + 1) or more "
                + "in magnitude; PostgreSQL numeric holds less"
        }
        return nil
    }

    /// The literal for a message, shortened when it is long.
    private static func literal(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> String {
        let shown = min(end - start, 40)
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + shown)]), as: UTF8.self)
        return shown < end - start ? "\(text)... (\(end - start) characters)" : text
    }
}
