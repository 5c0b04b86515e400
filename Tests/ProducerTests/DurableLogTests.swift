import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// The producer as a durable log: seqs and the stream survive restarts and SIGKILL, a
/// client of another stream gets everything retained, and a full disk answers 503 with
/// nothing half-accepted, then recovers by itself.
final class DurableLogTests: XCTestCase {
    private var cleanups: [() -> Void] = []

    override func tearDown() {
        for cleanup in cleanups.reversed() { cleanup() }
        cleanups.removeAll()
    }

    private func temporaryDataDir() -> String {
        let dir = TestServers.makeTempDir("producer-log")
        cleanups.append { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testARestartContinuesSeqsAndKeepsTheStream() throws {
        let dataDir = temporaryDataDir()
        let loop = try EventLoop()
        var stream = ""
        do {
            let producer = try ProducerHarness(dataDir: dataDir)
            stream = producer.stream
            let publisher = try Publisher(loop: loop, port: producer.httpPort)
            publisher.post("[{\"event_id\":\"a\"},{\"event_id\":\"b\"}]")
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 1 })
        }
        let producer = try ProducerHarness(dataDir: dataDir)
        XCTAssertEqual(producer.stream, stream)
        let health = try httpGet(port: producer.httpPort, path: "/health")
        XCTAssertTrue(health.body.contains("\"stream\":\"\(stream)\",\"last_seq\":2"), health.body)
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        publisher.post("{\"event_id\":\"c\"}")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 1 })
        XCTAssertEqual(publisher.answers[0].bodyString, "{\"accepted\":1,\"first_seq\":3,\"last_seq\":3,\"stream\":\"\(stream)\"}")
        let resumed = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 0, stream: stream)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.count == 3 })
        XCTAssertEqual(resumed.lines, ["{\"seq\":1,\"event_id\":\"a\",\"payload\":null}",
                                       "{\"seq\":2,\"event_id\":\"b\",\"payload\":null}",
                                       "{\"seq\":3,\"event_id\":\"c\",\"payload\":null}"])
    }

    func testABadRecordInAnOlderSegmentIsReportedAsAGapAndTheReplayGoesOn() throws {
        let dataDir = temporaryDataDir()
        let loop = try EventLoop()
        let pad = String(repeating: "b", count: 1000)
        do {
            // 1 MiB retention: 64 KiB segments, so 300 events of 1 KB fill several.
            let producer = try ProducerHarness(dataDir: dataDir, retentionBytes: 1 << 20)
            let publisher = try Publisher(loop: loop, port: producer.httpPort)
            for i in 0..<30 {
                publisher.post("[" + (0..<10).map { "{\"event_id\":\"b\(i * 10 + $0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]")
                XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == i + 1 })
            }
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: dataDir).filter { $0.hasSuffix(".log") }.sorted()
        XCTAssertGreaterThan(segments.count, 2)
        let secondFirstSeq = try XCTUnwrap(UInt64(segments[1].dropLast(4)))
        // A bad sector in the first (sealed) segment: start-up checks only the last one.
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: dataDir + "/" + segments[0]))
        try handle.seek(toOffset: 30_000)
        try handle.write(contentsOf: Data("XXXX".utf8))
        try handle.close()

        let producer = try ProducerHarness(dataDir: dataDir, retentionBytes: 1 << 20)
        let resumed = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.last == 300 })
        let gapIndex = try XCTUnwrap(resumed.lines.firstIndex { $0.hasPrefix("{\"gap\"") }, "\(resumed.lines.prefix(3))")
        let before = UInt64(gapIndex)
        XCTAssertGreaterThan(before, 0)
        XCTAssertEqual(resumed.lines[gapIndex], "{\"gap\":{\"from\":\(before + 1),\"to\":\(secondFirstSeq - 1)}}")
        XCTAssertEqual(resumed.seqs, Array(1...before) + Array(secondFirstSeq...300), "everything but the unreadable part, in order")
        XCTAssertEqual(producer.metrics.gapEvents.count, Int(secondFirstSeq - 1 - before))
    }

    func testAClientOfAnotherStreamGetsEverythingRetainedAndTheHandshakeNamesTheStream() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        publisher.post("[" + (0..<20).map { "{\"event_id\":\"s\($0)\"}" }.joined(separator: ",") + "]")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 1 })

        let handshake = try upgradeResponse(port: producer.wsPort, target: "/?from_seq=15&stream=0123456789abcdef")
        XCTAssertTrue(handshake.hasPrefix("HTTP/1.1 101"), handshake)
        XCTAssertTrue(handshake.contains("\r\nDedup-Stream: \(producer.stream)\r\n"), handshake)

        let other = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 15, stream: "0123456789abcdef")
        let same = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 15, stream: producer.stream)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { other.seqs.count == 20 && same.seqs.count == 5 })
        XCTAssertEqual(other.seqs, Array(1...20), "its seqs belong to a log that is gone: everything retained is new")
        XCTAssertEqual(same.seqs, Array(16...20))
        XCTAssertFalse(other.lines.contains { $0.contains("gap") })
    }

    /// Two producers must never append to one log (two containers on one volume, an
    /// overlapping restart): the second stops at start-up, naming the directory, and the
    /// first goes on; once the first is SIGKILLed the directory is free at once.
    func testASecondProducerOnTheSameDataDirRefusesToStartAndTheFirstGoesOn() throws {
        let dataDir = temporaryDataDir()
        let binary = try productPath("producer")
        func start(_ name: String) throws -> (process: ServiceProcess, http: Int, ws: Int) {
            let http = freeTCPPort(), ws = freeTCPPort()
            let environment = ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1", "DATA_DIR": dataDir,
                               "LOG_LEVEL": "warning"]
            let process = try ServiceProcess(binary: binary, log: dataDir + "-\(name).log", environment: environment)
            cleanups.append { process.kill(); try? FileManager.default.removeItem(atPath: dataDir + "-\(name).log") }
            return (process, http, ws)
        }
        let first = try start("first")
        XCTAssertTrue(waitForTCP(port: first.http))
        XCTAssertEqual(try httpPost(port: first.http, path: "/publish", body: "{\"event_id\":\"one\"}").status, 202)

        let second = try start("second")
        let deadline = Date().addingTimeInterval(10)
        while second.process.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(second.process.isRunning, "a second producer started on the same DATA_DIR")
        XCTAssertNotEqual(second.process.process.terminationStatus, 0)
        XCTAssertTrue(second.process.logText.contains("another producer"), second.process.logTail())
        XCTAssertTrue(second.process.logText.contains(dataDir), second.process.logTail())

        let answer = try httpPost(port: first.http, path: "/publish", body: "{\"event_id\":\"two\"}")
        XCTAssertEqual(answer.status, 202)
        XCTAssertTrue(answer.body.contains("\"first_seq\":2"), answer.body)

        first.process.kill()
        let third = try start("third")
        XCTAssertTrue(waitForTCP(port: third.http), third.process.logTail())
        let health = try httpGet(port: third.http, path: "/health")
        XCTAssertTrue(health.body.contains("\"last_seq\":2"), health.body)
        // Both accepted events are in the log once each, in order, the second never clobbered.
        let loop = try EventLoop()
        let replay = try Recorder(loop: loop, port: third.ws, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { replay.seqs.count == 2 })
        XCTAssertEqual(replay.lines, ["{\"seq\":1,\"event_id\":\"one\",\"payload\":null}",
                                      "{\"seq\":2,\"event_id\":\"two\",\"payload\":null}"])
    }

    func testEveryEventAnswered202SurvivesSIGKILLDuringAFlood() throws {
        let dataDir = temporaryDataDir()
        let binary = try productPath("producer")
        let http = freeTCPPort(), ws = freeTCPPort()
        let environment = ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1", "DATA_DIR": dataDir, "LOG_LEVEL": "warning"]
        let first = try ServiceProcess(binary: binary, log: dataDir + "-1.log", environment: environment)
        cleanups.append { first.kill(); try? FileManager.default.removeItem(atPath: dataDir + "-1.log") }
        XCTAssertTrue(waitForTCP(port: http))

        let loop = try EventLoop()
        let publishers = try (0..<4).map { _ in try Publisher(loop: loop, port: http) }
        let batchesPerPublisher = 200
        for (p, publisher) in publishers.enumerated() {
            for b in 0..<batchesPerPublisher {
                publisher.post("[" + (0..<50).map { "{\"event_id\":\"k\(p)-\(b)-\($0)\"}" }.joined(separator: ",") + "]")
            }
        }
        // Kill it mid-flood: some requests answered, others in flight or not yet read.
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { publishers.reduce(0) { $0 + $1.answers.count } >= 100 })
        first.kill()
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publishers.allSatisfy { $0.answers.count + $0.failures == batchesPerPublisher } })

        // Every 202: (first seq, the ids of its batch).
        var acknowledged: [(first: UInt64, ids: [String])] = []
        for (p, publisher) in publishers.enumerated() {
            for (b, answer) in publisher.answers.enumerated() where answer.status == 202 {
                let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(answer.bodyString.utf8)) as? [String: Any])
                let firstSeq = try XCTUnwrap(json["first_seq"] as? Int)
                XCTAssertEqual(json["last_seq"] as? Int, firstSeq + 49)
                acknowledged.append((UInt64(firstSeq), (0..<50).map { "k\(p)-\(b)-\($0)" }))
            }
        }
        XCTAssertGreaterThanOrEqual(acknowledged.count, 100)
        let lastAcknowledged = acknowledged.map { $0.first + 49 }.max()!

        let second = try ServiceProcess(binary: binary, log: dataDir + "-2.log", environment: environment)
        cleanups.append { second.terminate(); try? FileManager.default.removeItem(atPath: dataDir + "-2.log") }
        XCTAssertTrue(waitForTCP(port: http))
        let health = try httpGet(port: http, path: "/health")
        let healthJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any])
        let lastSeq = UInt64(try XCTUnwrap(healthJSON["last_seq"] as? Int))
        XCTAssertGreaterThanOrEqual(lastSeq, lastAcknowledged, "the log has at least every acknowledged event")

        let subscriber = try Recorder(loop: loop, port: ws, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { subscriber.seqs.count >= Int(lastSeq) })
        XCTAssertEqual(subscriber.seqs, Array(1...lastSeq))
        for batch in acknowledged {
            for (i, id) in batch.ids.enumerated() {
                let line = subscriber.lines[Int(batch.first) - 1 + i]
                XCTAssertTrue(line.hasPrefix("{\"seq\":\(batch.first + UInt64(i)),\"event_id\":\"\(id)\""), "acknowledged \(id) at seq \(batch.first + UInt64(i)); got \(line)")
            }
        }
    }

    func testAFullDiskAnswers503AcceptsNothingHalfwayAndRecoversOnceThereIsRoom() throws {
        let mountPoint = TestServers.makeTempDir("producer-tmpfs")
        cleanups.append { try? FileManager.default.removeItem(atPath: mountPoint) }
        let (status, output) = try TestServers.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint])
        guard status == 0 else { throw XCTSkip("cannot mount a small tmpfs (needs root): \(output)") }
        cleanups.append { _ = try? TestServers.run("/bin/umount", ["-l", mountPoint]) }
        let dataDir = mountPoint + "/log"
        let filler = mountPoint + "/filler"
        XCTAssertTrue(FileManager.default.createFile(atPath: filler, contents: Data(count: 1 << 20)))

        let http = freeTCPPort(), ws = freeTCPPort()
        let producer = try ServiceProcess(binary: try productPath("producer"), log: mountPoint + ".log",
                                          environment: ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1",
                                                        "DATA_DIR": dataDir, "LOG_LEVEL": "info"])
        cleanups.append { producer.terminate(); try? FileManager.default.removeItem(atPath: mountPoint + ".log") }
        XCTAssertTrue(waitForTCP(port: http))
        let loop = try EventLoop()
        let live = try Recorder(loop: loop, port: ws, fromSeq: 0)
        let publisher = try Publisher(loop: loop, port: http)
        let pad = String(repeating: "f", count: 1600)
        func batch(_ n: Int) -> String {
            "[" + (0..<10).map { "{\"event_id\":\"f\(n)-\($0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]"
        }
        // ~16 KB per request until the 4 MiB filesystem is full.
        var n = 0
        while publisher.answers.last?.status != 503 && n < 400 {
            publisher.post(batch(n))
            n += 1
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == n })
        }
        let refused = try XCTUnwrap(publisher.answers.last)
        XCTAssertEqual(refused.status, 503)
        XCTAssertTrue(refused.bodyString.contains("ENOSPC") || refused.bodyString.contains("EFBIG"), refused.bodyString)
        let accepted = publisher.answers.filter { $0.status == 202 }
        XCTAssertEqual(accepted.count, n - 1)
        let lastAccepted = UInt64(accepted.count * 10)
        XCTAssertTrue(accepted.last!.bodyString.contains("\"last_seq\":\(lastAccepted),"))
        // Still full: refused again, no seq consumed.
        publisher.post(batch(n))
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == n + 1 })
        XCTAssertEqual(publisher.answers.last?.status, 503)
        XCTAssertTrue(try httpGet(port: http, path: "/health").body.contains("\"last_seq\":\(lastAccepted),"))
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { live.seqs.count == Int(lastAccepted) })

        // Room again: publishing resumes by itself with the next seq.
        try FileManager.default.removeItem(atPath: filler)
        publisher.post(batch(n + 1))
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == n + 2 })
        XCTAssertEqual(publisher.answers.last?.status, 202)
        XCTAssertTrue(publisher.answers.last!.bodyString.contains("\"first_seq\":\(lastAccepted + 1),"), publisher.answers.last!.bodyString)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { live.seqs.count == Int(lastAccepted) + 10 })
        XCTAssertEqual(live.seqs, Array(1...(lastAccepted + 10)), "nothing half-accepted was ever broadcast")
        let resumed = try Recorder(loop: loop, port: ws, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.count == Int(lastAccepted) + 10 })
        XCTAssertEqual(resumed.seqs, live.seqs, "the log on disk holds exactly what was answered 202")
        XCTAssertTrue(producer.logText.contains("publishing resumed"), producer.logTail())
    }

    /// A disk that starts failing its flushes (EIO from `fdatasync`, the data maybe never
    /// written: the error PostgreSQL's "fsyncgate" was about) must not make a 202 a lie:
    /// every group whose flush failed is answered 503 and cut from the log, so neither a
    /// subscriber nor the log read back after a SIGKILL ever sees an event the producer
    /// refused, and publishing resumes with the next seq once flushes work again.
    func testADiskWhoseFlushesFailAnswers503AndTheLogHoldsExactlyWhatWasAnswered202() throws {
        let producer = try ProducerOnFailingDisk(dir: temporaryDataDir())
        cleanups.append { producer.kill() }
        let disk = producer.disk
        let loop = try EventLoop()
        let live = try Recorder(loop: loop, port: producer.ws, fromSeq: 0)
        let publisher = try Publisher(loop: loop, port: producer.http)
        var ids: [[String]] = []
        func publish(_ count: Int, _ expectedStatus: Int) {
            let batch = (0..<count).map { "d\(ids.count)-\($0)" }
            ids.append(batch)
            publisher.post("[" + batch.map { "{\"event_id\":\"\($0)\"}" }.joined(separator: ",") + "]")
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == ids.count })
            XCTAssertEqual(publisher.answers.last?.status, expectedStatus, publisher.answers.last?.bodyString ?? "no answer")
        }

        for _ in 0..<3 { publish(10, 202) }
        disk.failing = true
        // Refused groups larger than the one accepted after them: records of theirs left
        // behind it on disk would read back as seqs 41-50.
        for _ in 0..<3 { publish(20, 503) }
        let refusal = publisher.answers.last?.bodyString ?? ""
        XCTAssertTrue(refusal.contains("event log unavailable") && refusal.contains("EIO"), refusal)
        XCTAssertTrue(try httpGet(port: producer.http, path: "/health").body.contains("\"last_seq\":30,"))
        disk.failing = false
        publish(10, 202)
        XCTAssertTrue(publisher.answers.last!.bodyString.contains("\"first_seq\":31,"), publisher.answers.last!.bodyString)
        XCTAssertTrue(producer.process.logText.contains("publishing resumed"), producer.process.logTail())

        // Answered 202: batches 0-2, then 6, at seqs 1-40 in that order.
        let acknowledged = (ids[0..<3] + ids[6..<7]).flatMap { $0 }
        let expected = acknowledged.enumerated().map { "{\"seq\":\($0.offset + 1),\"event_id\":\"\($0.element)\",\"payload\":null}" }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { live.lines.count == 40 })
        XCTAssertEqual(live.lines, expected, "a subscriber saw exactly what was answered 202")
        XCTAssertEqual(try producer.killAndReadBack(loop: loop, expecting: 40).lines, expected,
                       "the log read back after SIGKILL holds exactly what was answered 202")
    }

    /// The same at a segment roll, where the flush that fails is the directory's (the new
    /// segment must survive a crash before anything in it is acknowledged): the new file
    /// is removed, the group refused, and the roll happens again once flushes work.
    func testAFailingDiskAtASegmentRollLeavesNoSegmentBehindAndRollsOnceItWorks() throws {
        // 1 MiB of retention: 64 KiB segments.
        let producer = try ProducerOnFailingDisk(dir: temporaryDataDir(), environment: ["RETENTION_BYTES": "1048576"])
        cleanups.append { producer.kill() }
        let disk = producer.disk
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.http)
        let pad = String(repeating: "s", count: 1000)
        func publish(_ batch: Int, _ expectedStatus: Int) {
            publisher.post("[" + (0..<10).map { "{\"event_id\":\"s\(batch)-\($0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]")
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == batch + 1 })
            XCTAssertEqual(publisher.answers.last?.status, expectedStatus, publisher.answers.last?.bodyString ?? "no answer")
        }
        func segments() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: producer.dataDir).filter { $0.hasSuffix(".log") }.sorted()
        }
        // 70 events of about 1 KB fill the first 64 KiB segment: the next group rolls.
        for batch in 0..<7 { publish(batch, 202) }
        XCTAssertEqual(try segments(), ["00000000000000000001.log"])
        disk.failing = true
        publish(7, 503)
        publish(8, 503)
        XCTAssertTrue(publisher.answers.last!.bodyString.contains("EIO"), publisher.answers.last!.bodyString)
        XCTAssertEqual(try segments(), ["00000000000000000001.log"], "the segment whose directory entry could not be flushed is gone")
        disk.failing = false
        publish(9, 202)
        XCTAssertTrue(publisher.answers.last!.bodyString.contains("\"first_seq\":71,"), publisher.answers.last!.bodyString)
        XCTAssertEqual(try segments(), ["00000000000000000001.log", "00000000000000000071.log"])

        let replay = try producer.killAndReadBack(loop: loop, expecting: 80)
        let ids = replay.lines.compactMap { $0.firstMatch(of: /"event_id":"([^"]+)"/).map { String($0.1) } }
        XCTAssertEqual(ids, ((0..<7).map { $0 } + [9]).flatMap { batch in (0..<10).map { "s\(batch)-\($0)" } })
        XCTAssertEqual(replay.seqs, Array(1...80))
    }

    /// Sends a WebSocket upgrade request and returns the response head.
    private func upgradeResponse(port: Int, target: String) throws -> String {
        let fd = try rawConnect(port: port)
        defer { close(fd) }
        let request = "GET \(target) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual("\r\n\r\n".utf8), recv(fd, &byte, 1, 0) == 1 { head.append(byte) }
        return String(decoding: head, as: UTF8.self)
    }
}

/// A real producer whose flushes a `FailingDisk` fails on demand, on ports and a
/// `DATA_DIR` of its own under `dir`.
private final class ProducerOnFailingDisk {
    let disk: FailingDisk
    let http = freeTCPPort(), ws = freeTCPPort()
    let dataDir: String
    private(set) var process: ServiceProcess
    private let dir: String
    private let binary: String
    private let environment: [String: String]
    private var lives = 1

    init(dir: String, environment extra: [String: String] = [:]) throws {
        self.dir = dir
        disk = try FailingDisk.build(in: dir)
        dataDir = dir + "/log"
        binary = try productPath("producer")
        environment = ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1", "DATA_DIR": dataDir, "LOG_LEVEL": "info"]
            .merging(extra) { $1 }
        process = try ServiceProcess(binary: binary, log: dir + "/producer-1.log", environment: environment.merging(disk.environment) { $1 })
        XCTAssertTrue(waitForTCP(port: http))
    }

    /// SIGKILLs it, starts it again on the same `DATA_DIR` with a disk that works, and
    /// returns a subscriber that read the whole log from seq 0: `count` lines, and nothing
    /// more in the 300 ms after them.
    func killAndReadBack(loop: EventLoop, expecting count: Int) throws -> Recorder {
        process.kill()
        lives += 1
        process = try ServiceProcess(binary: binary, log: dir + "/producer-\(lives).log", environment: environment)
        XCTAssertTrue(waitForTCP(port: http))
        let replay = try Recorder(loop: loop, port: ws, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { replay.lines.count >= count })
        XCTAssertFalse(loop.run(timeout: .milliseconds(300)) { replay.lines.count > count }, "nothing beyond seq \(count)")
        return replay
    }

    func kill() { process.kill() }
}
