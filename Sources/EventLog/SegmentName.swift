/// File names in the log directory: segments and their indexes are named by the
/// segment's first seq, zero-padded to 20 digits so names sort as numbers do.
enum SegmentName {
    static let segmentSuffix = ".log"
    static let indexSuffix = ".index"
    /// The file holding the stream id.
    static let streamFile = "stream"

    static func segment(_ firstSeq: UInt64) -> String { padded(firstSeq) + segmentSuffix }
    static func index(_ firstSeq: UInt64) -> String { padded(firstSeq) + indexSuffix }

    /// The first seq a segment file name stands for, or nil for any other file.
    static func firstSeq(ofSegment name: String) -> UInt64? {
        guard name.hasSuffix(segmentSuffix) else { return nil }
        let digits = name.dropLast(segmentSuffix.count)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }

    private static func padded(_ seq: UInt64) -> String {
        let text = String(seq)
        return String(repeating: "0", count: max(0, 20 - text.count)) + text
    }
}
