import Foundation
import Glibc
import TestSupport
import XCTest

/// The `monitoring` compose profile's files (monitoring/), checked for real with Debian's
/// `prometheus` package (scripts/install-deps installs it):
/// 1. `promtool check config` and `promtool check rules` on the files as they are (the
///    Docker DNS names are only checked for syntax), and `promtool test rules` on
///    monitoring/alerts-test.yml, which makes every alert fire on synthetic series;
/// 2. the Grafana dashboard JSON, statically (Grafana itself cannot run here);
/// 3. a real Prometheus scraping a real producer and three listeners (listener-a,
///    listener-b and one replica of the scalable `listener`) with a config derived from
///    the real one: the same jobs, rules and settings, each DNS name replaced by a static
///    127.0.0.1 target on that service's test port. Every target must be up, every alert
///    rule must load and evaluate without error, every metric a rule or panel names must be
///    exposed by some target, every dashboard query must return at least one series, a
///    healthy system must raise no alert, and a killed listener must raise DedupListenerDown.
/// scripts/check-containers.py checks the other half: that the DNS names and ports in
/// prometheus.yml are the compose services and their port settings.
final class MonitoringTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    private static let monitoring = root + "/monitoring"
    private static let configFile = monitoring + "/prometheus.yml"
    private static let rulesFile = monitoring + "/alerts.yml"
    private static let dashboardFile = monitoring + "/grafana/dashboards/dedup.json"
    private static let datasourceFile = monitoring + "/grafana/provisioning/datasources/prometheus.yml"

    /// Grafana's built-in variables the dashboard may use, and what they stand for when a
    /// query is sent to Prometheus directly (scrape interval here: 1 s).
    private static let grafanaVariables = ["$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m"]

    private func tools() throws -> (prometheus: String, promtool: String) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            throw XCTSkip("Debian's prometheus package is not installed (/usr/bin/prometheus, /usr/bin/promtool): "
                          + "run scripts/install-deps (apt-get install prometheus)")
        }
        return ("/usr/bin/prometheus", "/usr/bin/promtool")
    }

    // MARK: 1. promtool

    func testPromtoolAcceptsTheConfigAndTheRules() throws {
        let promtool = try tools().promtool
        let (configStatus, configOut) = try TestServers.run(promtool, ["check", "config", Self.configFile])
        XCTAssertEqual(configStatus, 0, "promtool check config:\n\(configOut)")
        XCTAssertTrue(configOut.contains("SUCCESS"), configOut)
        let (rulesStatus, rulesOut) = try TestServers.run(promtool, ["check", "rules", Self.rulesFile])
        XCTAssertEqual(rulesStatus, 0, "promtool check rules:\n\(rulesOut)")
        let count = rulesOut.firstMatch(of: #/SUCCESS: (\d+) rules found/#).flatMap { Int($0.1) }
        XCTAssertEqual(count, try Self.alertRules().count, rulesOut)
    }

    /// monitoring/alerts-test.yml: every alert fires on synthetic series that call for it
    /// (and not on its healthy neighbours), evaluated by promtool's rule unit tests.
    func testEveryAlertRuleFiresInPromtoolsUnitTests() throws {
        let promtool = try tools().promtool
        let testFile = Self.monitoring + "/alerts-test.yml"
        let (status, out) = try TestServers.run(promtool, ["test", "rules", testFile])
        XCTAssertEqual(status, 0, "promtool test rules:\n\(out)")
        let script = """
        import json, sys, yaml
        doc = yaml.safe_load(open(sys.argv[1]))
        print(json.dumps(sorted({t["alertname"] for test in doc["tests"] for t in test.get("alert_rule_test") or [] if t.get("exp_alerts")})))
        """
        let fired = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try runPython(script, arguments: [testFile]).utf8)) as? [String])
        XCTAssertEqual(Set(fired), Set(try Self.alertRules().map(\.name)), "alerts with no unit test that makes them fire")
    }

    // MARK: 2. The dashboard, statically

    func testDashboardJSONIsWellFormed() throws {
        let dashboard = try Self.dashboard()
        XCTAssertEqual(dashboard["uid"] as? String, "dedup")
        XCTAssertFalse((dashboard["title"] as? String ?? "").isEmpty, "dashboard title")
        let uid = try Self.datasourceUID()
        let panels = Self.allPanels(dashboard)
        XCTAssertGreaterThan(panels.count, 0, "no panels")
        var ids = Set<Int>()
        for panel in panels {
            let title = panel["title"] as? String ?? "?"
            let id = try XCTUnwrap(panel["id"] as? Int, "panel \(title) has no id")
            XCTAssertTrue(ids.insert(id).inserted, "panel id \(id) (\(title)) is not unique")
            XCTAssertFalse(title.isEmpty || title == "?", "panel \(id) has no title")
            let grid = panel["gridPos"] as? [String: Int]
            XCTAssertNotNil(grid.flatMap { g in ["x", "y", "w", "h"].allSatisfy { g[$0] != nil } ? g : nil }, "panel \(title): gridPos")
            if panel["type"] as? String == "row" {
                // A row is a heading that groups the panels after it: no query of its own.
                XCTAssertNil(panel["targets"], "row \(title) has targets")
                continue
            }
            let datasource = panel["datasource"] as? [String: Any]
            XCTAssertEqual(datasource?["uid"] as? String, uid, "panel \(title): datasource is the provisioned one")
            XCTAssertEqual(datasource?["type"] as? String, "prometheus", "panel \(title): datasource type")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            XCTAssertGreaterThan(targets.count, 0, "panel \(title) has no target")
            var refIds = Set<String>()
            for target in targets {
                let expr = (target["expr"] as? String ?? "").trimmingCharacters(in: .whitespaces)
                XCTAssertFalse(expr.isEmpty, "panel \(title): a target without expr")
                let refId = target["refId"] as? String ?? ""
                XCTAssertTrue(!refId.isEmpty && refIds.insert(refId).inserted, "panel \(title): refId '\(refId)' missing or repeated")
                if let targetSource = target["datasource"] as? [String: Any] {
                    XCTAssertEqual(targetSource["uid"] as? String, uid, "panel \(title) target \(refId): datasource")
                }
            }
        }
        // Every query is plain PromQL once Grafana's variables are replaced.
        for (title, expr) in try Self.dashboardQueries() {
            XCTAssertFalse(Self.promQL(expr).contains("$"), "panel \(title): unknown variable in \(expr)")
        }
    }

    // MARK: 3. A real Prometheus against the real programs

    func testPrometheusScrapesEveryProgramAndEveryDashboardQueryReturnsASeries() throws {
        let prometheusBinary = try tools().prometheus
        let harness = try SystemHarness()
        try harness.startProducer()
        // The compose services, as this test runs them.
        var ports = ["producer": harness.httpPort]
        for (service, id) in [("listener-a", "listener-a"), ("listener-b", "listener-b"), ("listener", "listener-replica-1")] {
            ports[service] = try harness.startListener(id).port
        }
        // Duplicates, so the duplicate counters move too.
        let summary = try harness.flood(count: 400, duplicates: 0.2, prefix: "mon-")
        let distinct = try XCTUnwrap(summary["distinct"] as? Int, "flood summary: \(summary)")
        XCTAssertTrue(waitUntil(60) { (try? harness.rowCount(prefix: "mon-")) == distinct },
                      "stored \((try? harness.rowCount(prefix: "mon-")) ?? -1) of \(distinct)")

        // The test's Prometheus config: the real one, DNS names -> 127.0.0.1 test ports.
        let dir = TestServers.makeTempDir("prometheus")
        let derived = try Self.deriveConfig(to: dir + "/prometheus.yml", ports: ports)
        XCTAssertEqual(Set(derived.jobs.keys), ["producer", "listener-a", "listener-b", "listener"], "jobs: \(derived.jobs)")
        let promtool = try tools().promtool
        let (status, out) = try TestServers.run(promtool, ["check", "config", dir + "/prometheus.yml"])
        XCTAssertEqual(status, 0, "derived config:\n\(out)")

        let port = TestServers.freePort()
        let prometheus = try ServiceProcess(name: "prometheus", binary: prometheusBinary,
                                            arguments: ["--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                                                        "--web.listen-address=127.0.0.1:\(port)", "--storage.tsdb.retention.time=1h",
                                                        "--log.level=warn"],
                                            log: dir + "/prometheus.log", environment: [:], port: port)
        defer {
            prometheus.kill()
            try? FileManager.default.removeItem(atPath: dir + "/data")  // the TSDB; the config and log stay for a look
        }
        let api = PrometheusAPI(port: port)
        XCTAssertTrue(waitUntil(30) { api.status("/-/ready") == 200 }, "prometheus not ready:\n\(prometheus.logTail(20))")

        // Every target up: one per job, each the service's test port.
        var targets: [[String: Any]] = []
        let allUp = waitUntil(30) {
            targets = (api.json("/api/v1/targets?state=active")?["activeTargets"] as? [[String: Any]]) ?? []
            return targets.count == derived.jobs.count && targets.allSatisfy { $0["health"] as? String == "up" }
        }
        XCTAssertTrue(allUp, "targets: \(targets.map { "\($0["scrapePool"] ?? "?") \($0["scrapeUrl"] ?? "?") \($0["health"] ?? "?") \($0["lastError"] ?? "")" })\n\(prometheus.logTail(20))")
        for (job, address) in derived.jobs {
            XCTAssertTrue(targets.contains { ($0["labels"] as? [String: String])?["job"] == job && ($0["scrapeUrl"] as? String)?.contains(address) == true },
                          "job \(job) does not scrape \(address)")
        }

        // Every alert rule loaded and evaluated without an error.
        let expected = try Self.alertRules()
        var rules: [[String: Any]] = []
        let evaluated = waitUntil(30) {
            rules = ((api.json("/api/v1/rules")?["groups"] as? [[String: Any]]) ?? []).flatMap { $0["rules"] as? [[String: Any]] ?? [] }
            return rules.count == expected.count && rules.allSatisfy { $0["health"] as? String == "ok" }
        }
        XCTAssertTrue(evaluated, "rules: \(rules.map { "\($0["name"] ?? "?"): \($0["health"] ?? "?") \($0["lastError"] ?? "")" })")
        XCTAssertEqual(Set(rules.compactMap { $0["name"] as? String }), Set(expected.map(\.name)))

        // Every metric a rule or a panel names is exposed by some target: a misspelt or
        // missing metric would make an alert that never fires or an empty panel.
        let queries = try Self.dashboardQueries()
        let names = Set((expected.map(\.expr) + queries.map(\.expr)).flatMap(Self.metricNames))
        var exposed = Set<String>()
        let everyName = waitUntil(20) {
            exposed = Set((api.jsonValue("/api/v1/label/__name__/values") as? [String]) ?? [])
            return names.isSubset(of: exposed)
        }
        let missing = names.subtracting(exposed).sorted()
        XCTAssertTrue(everyName, "metrics named by the rules or the dashboard that no target exposes: \(missing)\n"
                      + "(each target's /metrics: \(Self.exposition(ports)))")

        // Every dashboard query returns at least one series (a PromQL error is reported as such).
        var pending = queries.map { (title: $0.title, expr: $0.expr, answer: "not asked") }
        let allAnswered = waitUntil(40) {
            pending = pending.compactMap { query in
                switch api.query(Self.promQL(query.expr)) {
                case .success(let series) where series > 0: return nil
                case .success: return (query.title, query.expr, "no series")
                case .failure(let error): return (query.title, query.expr, "error: \(error.message)")
                }
            }
            return pending.isEmpty
        }
        XCTAssertTrue(allAnswered, "dashboard queries that return no series:\n"
                      + pending.map { "  \($0.title): \($0.expr) -> \($0.answer)" }.joined(separator: "\n")
                      + "\n(metrics no target exposes: \(missing))")

        // A healthy system raises no alert (a pending one may pass while events drain).
        var active: [[String: Any]] = []
        XCTAssertTrue(waitUntil(30) {
            active = (api.json("/api/v1/alerts")?["alerts"] as? [[String: Any]]) ?? []
            return active.isEmpty
        }, "alerts in a healthy system: \(active.map { "\($0["labels"] ?? "") \($0["state"] ?? "")" })")

        // A listener that stops answering: DedupListenerDown for its job (pending at once,
        // firing after the rule's `for`).
        harness.listeners["listener-b"]?.kill()
        var raised: [[String: Any]] = []
        XCTAssertTrue(waitUntil(30) {
            raised = ((api.json("/api/v1/alerts")?["alerts"] as? [[String: Any]]) ?? []).filter {
                let labels = $0["labels"] as? [String: String]
                return labels?["alertname"] == "DedupListenerDown" && labels?["job"] == "listener-b"
            }
            return !raised.isEmpty
        }, "no DedupListenerDown for listener-b: \(api.json("/api/v1/alerts") ?? [:])")
        XCTAssertEqual((raised.first?["labels"] as? [String: String])?["severity"], "critical")
        XCTAssertTrue(prometheus.isRunning, prometheus.logTail(20))
    }

    // MARK: Helpers

    private static func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboardFile))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(dashboardFile) is not a JSON object")
    }

    /// Top-level panels and those nested in collapsed rows.
    private static func allPanels(_ dashboard: [String: Any]) -> [[String: Any]] {
        let top = dashboard["panels"] as? [[String: Any]] ?? []
        return top.flatMap { [$0] + ($0["panels"] as? [[String: Any]] ?? []) }
    }

    /// (panel title, expr) of every query on the dashboard.
    private static func dashboardQueries() throws -> [(title: String, expr: String)] {
        allPanels(try dashboard()).flatMap { panel in
            (panel["targets"] as? [[String: Any]] ?? []).compactMap { target in
                (target["expr"] as? String).map { (panel["title"] as? String ?? "?", $0) }
            }
        }
    }

    private static func promQL(_ expr: String) -> String {
        grafanaVariables.reduce(expr) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
    }

    /// The metric names in a PromQL expression (this project's, and `up`).
    private static func metricNames(_ expr: String) -> [String] {
        var names = expr.matches(of: #/\b(dedup_[a-z0-9_]+)\b/#).map { String($0.1) }
        if expr.contains(#/\bup\s*[{\[)]/#) { names.append("up") }
        return names
    }

    /// The provisioned data source's uid.
    private static func datasourceUID() throws -> String {
        let text = try String(contentsOfFile: datasourceFile, encoding: .utf8)
        return try XCTUnwrap(text.firstMatch(of: #/\n\s*uid:\s*(\S+)/#).map { String($0.1) }, "no uid in \(datasourceFile)")
    }

    /// The alert rules (name, expr) of alerts.yml, read with PyYAML.
    private static func alertRules() throws -> [(name: String, expr: String)] {
        let script = """
        import json, sys, yaml
        doc = yaml.safe_load(open(sys.argv[1]))
        print(json.dumps([{"name": r.get("alert") or r.get("record"), "expr": r["expr"]}
                          for g in doc["groups"] for r in g["rules"]]))
        """
        let out = try runPython(script, arguments: [rulesFile])
        let rules = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: String]], out)
        return rules.map { ($0["name"] ?? "?", $0["expr"] ?? "") }
    }

    /// Writes the test's config: monitoring/prometheus.yml with a 1 s scrape and
    /// evaluation interval, the rule files by absolute path, and each job's DNS names
    /// replaced by static 127.0.0.1 targets on `ports[name]`. Returns job -> address.
    private static func deriveConfig(to path: String, ports: [String: Int]) throws -> (jobs: [String: String], config: String) {
        let script = """
        import json, os, sys, yaml
        src, out, ports = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        cfg = yaml.safe_load(open(src))
        g = cfg.setdefault("global", {})
        g["scrape_interval"], g["scrape_timeout"], g["evaluation_interval"] = "1s", "1s", "1s"
        cfg["rule_files"] = [r if r.startswith("/") else os.path.join(os.path.dirname(os.path.abspath(src)), r)
                             for r in cfg.get("rule_files") or []]
        jobs = {}
        for job in cfg["scrape_configs"]:
            if job.get("static_configs"):
                sys.exit("job %s has static targets: this test expects DNS discovery only" % job["job_name"])
            job.pop("scrape_interval", None); job.pop("scrape_timeout", None)
            targets = ["127.0.0.1:%d" % ports[name] for sd in job.pop("dns_sd_configs", []) for name in sd["names"]]
            if len(targets) != 1:
                sys.exit("job %s: expected one DNS name, got %r" % (job["job_name"], targets))
            job["static_configs"] = [{"targets": targets}]
            jobs[job["job_name"]] = targets[0]
        text = yaml.safe_dump(cfg, sort_keys=False)
        open(out, "w").write(text)
        print(json.dumps({"jobs": jobs, "config": text}))
        """
        let portsJSON = String(decoding: try JSONSerialization.data(withJSONObject: ports), as: UTF8.self)
        let out = try runPython(script, arguments: [configFile, path, portsJSON])
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
        return (try XCTUnwrap(parsed["jobs"] as? [String: String], out), parsed["config"] as? String ?? "")
    }

    /// The metric names each target exposes, for a failure message.
    private static func exposition(_ ports: [String: Int]) -> String {
        ports.sorted { $0.key < $1.key }.map { service, port in
            let text = (try? httpGet(port: port, path: "/metrics").body) ?? ""
            let names = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }
                .compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
            return "\(service): \(names.sorted().joined(separator: " "))"
        }.joined(separator: "; ")
    }
}

/// Prometheus' HTTP API through curl (its answers may be chunked).
private struct PrometheusAPI {
    let port: Int

    private func get(_ path: String, form: [String] = []) -> (Int, String)? {
        var arguments = ["-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"]
        if !form.isEmpty { arguments.append("-G") }
        for field in form { arguments += ["--data-urlencode", field] }
        arguments.append("http://127.0.0.1:\(port)\(path)")
        guard let (status, out) = try? TestServers.run("/usr/bin/curl", arguments), status == 0,
              let newline = out.lastIndex(of: "\n"), let code = Int(out[out.index(after: newline)...]) else { return nil }
        return (code, String(out[..<newline]))
    }

    func status(_ path: String) -> Int? { get(path)?.0 }

    struct APIError: Error { let message: String }

    /// `data` of an API answer, or its error.
    func answer(_ path: String, form: [String] = []) -> Result<Any?, APIError> {
        guard let (code, body) = get(path, form: form) else { return .failure(APIError(message: "no answer from curl")) }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            return .failure(APIError(message: "HTTP \(code): \(body.prefix(300))"))
        }
        guard code == 200, object["status"] as? String == "success" else {
            return .failure(APIError(message: "HTTP \(code): \(object["errorType"] ?? "") \(object["error"] ?? "")"))
        }
        return .success(object["data"])
    }

    func jsonValue(_ path: String) -> Any? { (try? answer(path).get()) ?? nil }

    func json(_ path: String) -> [String: Any]? { jsonValue(path) as? [String: Any] }

    /// How many series (or 1 for a scalar) an instant query returns.
    func query(_ promQL: String) -> Result<Int, APIError> {
        answer("/api/v1/query", form: ["query=\(promQL)"]).map { data in
            guard let data = data as? [String: Any] else { return 0 }
            if let result = data["result"] as? [Any] { return data["resultType"] as? String == "scalar" ? 1 : result.count }
            return data["result"] == nil ? 0 : 1
        }
    }
}
