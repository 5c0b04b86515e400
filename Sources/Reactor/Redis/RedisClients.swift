/// Opens the client a `REDIS_URL` setting names: one node or a Redis Cluster.
///
/// - A comma-separated list (`redis://:pw@h1:7000,h2:7001,h3:7002`) is a cluster's seeds:
///   a `RedisClusterClient` at once. Entries may leave out `redis://` and the credentials;
///   they take the first entry's. A cluster has only database 0, so a `/db` is refused.
/// - A single URL is what most users mean by "my Redis", and it may be a cluster node all
///   the same: the node is asked `INFO cluster` as soon as it answers. With
///   `cluster_enabled:1` a `RedisClusterClient` takes it as its seed (and the first
///   connection closes); otherwise that same `RedisClient`, already up, is the client, so a
///   single node keeps the plain client's hot path. Until the node answers, nothing is
///   decided and `ready` waits (the client keeps reconnecting with its backoff).
///
/// Passwords never appear in errors or descriptions (`RedisURL.description` masks them).
public enum RedisClients {
    /// The URLs of a setting: one, or the seeds of a comma-separated list.
    public static func urls(_ setting: String) throws(RedisURLError) -> [RedisURL] {
        let parts = setting.split(separator: ",", omittingEmptySubsequences: false)
            .map { String($0).trimmingSpaces }
        let first = try RedisURL(parsing: parts[0])
        guard parts.count > 1 else { return [first] }
        var urls = [first]
        for part in parts.dropFirst() {
            guard !part.isEmpty else { throw RedisURLError(setting, "empty entry in the list of cluster seeds") }
            var url = try RedisURL(parsing: part.lowercased().hasPrefix("redis://") ? part : "redis://" + part)
            if url.password == nil {
                url.username = first.username
                url.password = first.password
            }
            urls.append(url)
        }
        if urls.contains(where: { $0.database != 0 }) {
            throw RedisURLError(setting, "a Redis Cluster has only database 0 (drop the /db part)")
        }
        return urls
    }

    /// Opens the client `setting` names and calls `ready` with it once, on the loop (see the
    /// type's documentation for how one URL is told from a cluster node). Throws only for a
    /// setting that cannot be parsed.
    public static func open(loop: EventLoop, setting: String, configuration: RedisClient.Configuration = RedisClient.Configuration(),
                            ready: @escaping (any RedisCommandClient) -> Void) throws(RedisURLError) {
        let urls = try urls(setting)
        guard urls.count == 1 else {
            let cluster = RedisClusterClient(loop: loop, seeds: urls, configuration: configuration)
            loop.executeSoon { ready(cluster) }
            return
        }
        let client = RedisClient(loop: loop, url: urls[0], configuration: configuration)
        whenKnown(client, loop: loop, configuration: configuration, ready: ready)
    }

    /// Waits until `client` (a single URL) answers, asks it `INFO cluster`, and calls
    /// `ready` once, on the loop: with `client` itself for a plain node, or with a new
    /// `RedisClusterClient` seeded from it for a cluster node (after closing `client`).
    /// For a caller that needs a client before the node answers.
    public static func whenKnown(_ client: RedisClient, loop: EventLoop, configuration: RedisClient.Configuration = RedisClient.Configuration(),
                                 ready: @escaping (any RedisCommandClient) -> Void) {
        let previous = client.onStateChange
        var asking = false
        client.onStateChange = { state, error in
            previous?(state, error)
            guard state == .up, !asking else { return }
            asking = true
            client.command(["INFO", "cluster"]) { result in
                asking = false
                switch result {
                case .success(let reply):
                    client.onStateChange = previous
                    if reply.string?.contains("cluster_enabled:1") == true {
                        client.onStateChange = nil
                        client.close()
                        ready(RedisClusterClient(loop: loop, seeds: [client.url], configuration: configuration))
                    } else {
                        ready(client)
                    }
                case .failure(.server):
                    // INFO renamed or refused: not something a cluster node does.
                    client.onStateChange = previous
                    ready(client)
                case .failure:
                    break  // the connection went; ask again when it is back up
                }
            }
        }
    }
}

extension String {
    /// Without leading and trailing spaces (no Foundation in the runtime).
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
