import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// The producer accepts an event_id or payload exactly when a real PostgreSQL can store it
/// (`TEXT` for the id, `$1::jsonb` for the payload), on thousands of seeded values with the
/// edge cases mixed in. Set `DOOR_SEED` to replay another seed.
final class DoorRefusalPostgresTests: XCTestCase {
    private static let defaultSeed: UInt64 = 20_261_130

    func testTheDecoderAcceptsExactlyWhatPostgreSQLStores() throws {
        let seed = ProcessInfo.processInfo.environment["DOOR_SEED"].flatMap(UInt64.init) ?? Self.defaultSeed
        var generator = StorableEdgeGenerator(seed: seed)
        let payloads = (0..<8_000).map { _ in generator.payload() }
        let ids = (0..<4_000).map { _ in generator.idBody() }

        let postgres = try PostgresVerdicts()
        let payloadVerdicts = try postgres.verdicts(payloads.map(\.bytes), asJSONB: true)
        let idVerdicts = try postgres.verdicts(ids.map(looselyDecodedJSONString), asJSONB: false)

        var mismatches = 0
        var refusedByUs = 0
        func check(_ label: String, _ value: [UInt8], ours: PublishError?, expected: Bool, why: String) {
            if ours == nil { } else { refusedByUs += 1 }
            guard (ours == nil) != expected else { return }
            mismatches += 1
            if mismatches <= 10 {
                XCTFail("seed \(seed), \(label): producer \(ours.map { "refused (\($0.message))" } ?? "accepted"), "
                        + "expected \(expected ? "accept" : "refuse") (\(why)); value: \(Self.show(value))")
            }
        }
        for ((payload, depth), postgresError) in zip(payloads, payloadVerdicts) {
            let body = Array("{\"event_id\":\"k\",\"payload\":".utf8) + payload + [UInt8(ascii: "}")]
            let why = postgresError ?? (depth > PublishDecoder.maxPayloadDepth ? "nests \(depth) deep" : "PostgreSQL stores it")
            check("payload", payload, ours: decode(body),
                  expected: postgresError == nil && depth <= PublishDecoder.maxPayloadDepth, why: why)
        }
        for (id, postgresError) in zip(ids, idVerdicts) {
            let body = Array("{\"event_id\":\"".utf8) + id + Array("\",\"payload\":1}".utf8)
            let length = looselyDecodedJSONString(id).count
            let fits = (1...PublishDecoder.maxEventIDBytes).contains(length)
            check("event_id", id, ours: decode(body), expected: postgresError == nil && fits,
                  why: postgresError ?? (fits ? "PostgreSQL stores it" : "\(length) bytes"))
        }
        XCTAssertEqual(mismatches, 0, "seed \(seed): \(mismatches) verdicts differ from PostgreSQL's")
        // Both sides of the line must be well exercised for the agreement to mean anything.
        let total = payloads.count + ids.count
        XCTAssertGreaterThan(refusedByUs, total / 5, "too few refusals to prove anything")
        XCTAssertLessThan(refusedByUs, total * 4 / 5, "too few acceptances to prove anything")
    }

    private func decode(_ body: [UInt8]) -> PublishError? {
        var batch = EventBatch()
        do {
            try body.withUnsafeBytes { try PublishDecoder.decode($0, into: &batch) }
            return nil
        } catch {
            return error as? PublishError ?? PublishError("\(error)")
        }
    }

    /// A value for a failure message: printable ASCII as is, every other byte escaped, long
    /// values cut in the middle.
    private static func show(_ value: [UInt8]) -> String {
        let shown = value.count > 300 ? Array(value.prefix(150)) + Array("<...\(value.count) bytes...>".utf8) + value.suffix(150) : value
        return shown.map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : String(format: "<%02X>", $0) }.joined()
    }
}

/// Asks PostgreSQL which byte strings it stores as `jsonb` or `text`: values go over as hex
/// in one parameter per few hundred, and a function tries each in its own subtransaction.
private final class PostgresVerdicts {
    private let loop: EventLoop
    private let connection: PostgresConnection

    init() throws {
        _ = try PostgresTestServer.shared.psql("""
            CREATE OR REPLACE FUNCTION door_verdict(value bytea, as_jsonb boolean) RETURNS text LANGUAGE plpgsql AS $$
            BEGIN
                IF as_jsonb THEN PERFORM convert_from(value, 'UTF8')::jsonb;
                ELSE PERFORM convert_from(value, 'UTF8')::text;
                END IF;
                RETURN NULL;
            EXCEPTION WHEN others THEN
                RETURN SQLSTATE || ': ' || SQLERRM;
            END $$
            """)
        // convert_from checks UTF-8 only in a UTF8 database, which is what production runs.
        XCTAssertEqual(try PostgresTestServer.shared.psql("SHOW server_encoding"), "UTF8")
        loop = try EventLoop()
        var configuration = PostgresConfiguration(url: PostgresTestServer.shared.url)
        configuration.operationTimeout = .seconds(60)
        connection = try PostgresConnection(loop: loop, configuration: configuration)
        guard loop.run(timeout: .seconds(10), until: { self.connection.state == .up }) else {
            throw PostgresError(.connectFailed, "PostgreSQL test server not up: \(String(describing: connection.lastError))")
        }
    }

    deinit { connection.close() }

    /// For each value, nil when PostgreSQL takes it, else its SQLSTATE and message.
    func verdicts(_ values: [[UInt8]], asJSONB: Bool) throws -> [String?] {
        var verdicts: [String?] = []
        var start = 0
        while start < values.count {
            var end = start
            var hexBytes = 0
            while end < values.count, end - start < 500, hexBytes < 2 << 20 {
                hexBytes += values[end].count * 2 + 1
                end += 1
            }
            verdicts += try query(values[start..<end], asJSONB: asJSONB)
            start = end
        }
        return verdicts
    }

    private func query(_ values: ArraySlice<[UInt8]>, asJSONB: Bool) throws -> [String?] {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        for (i, value) in values.enumerated() {
            if i > 0 { hex.append(UInt8(ascii: ",")) }
            for byte in value { hex += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
        }
        var outcome: Result<PostgresResult, PostgresError>?
        connection.query("""
            SELECT door_verdict(decode(h, 'hex'), $2::boolean)
            FROM unnest(string_to_array($1, ',')) WITH ORDINALITY AS v(h, n) ORDER BY n
            """, params: [String(decoding: hex, as: UTF8.self), asJSONB ? "true" : "false"]) { outcome = $0 }
        guard loop.run(timeout: .seconds(60), until: { outcome != nil }) else {
            throw PostgresError(.timeout, "no answer from PostgreSQL")
        }
        let result = try outcome!.get()
        guard result.rowCount == values.count else {
            throw PostgresError(.server, "\(result.rowCount) verdicts for \(values.count) values")
        }
        return (0..<result.rowCount).map { result.string($0, 0) }
    }
}
