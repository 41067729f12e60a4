import Hummingbird

/// `/v2/repository/...`: index, load and unload. Registered only when enabled, and every call needs
/// `Authorization: Bearer <token>`. Names resolve inside the repository folder only; nothing is
/// ever fetched from a URL.
struct RepositoryControlRoutes {
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func register(on router: Router<ServeRequestContext>) {
        router.post("v2/repository/index") { request, _ in
            await guarded(request) {
                let loaded = Dictionary(uniqueKeysWithValues: repository.index.map { ($0.name, $0.versions) })
                var entries: [JSONValue] = []
                for name in try repository.availableModels() {
                    for version in loaded[name] ?? [""] {
                        var entry: [String: JSONValue] = ["name": .string(name), "state": .string(loaded[name] == nil ? "UNAVAILABLE" : "READY")]
                        if !version.isEmpty { entry["version"] = .string(version) }
                        entries.append(.object(entry))
                    }
                }
                return Responses.json(.array(entries))
            }
        }
        router.post("v2/repository/models/:model/load") { request, context in
            await guarded(request) {
                try await repository.loadFromRepository(try context.parameters.require("model"))
                return Responses.json([], status: .ok)
            }
        }
        router.post("v2/repository/models/:model/unload") { request, context in
            await guarded(request) {
                let name = try context.parameters.require("model")
                guard repository.unload(name) else { throw HandlerError.notFound("unknown model '\(name)'") }
                return Responses.json([], status: .ok)
            }
        }
    }

    private func guarded(_ request: Request, _ body: () async throws -> Response) async -> Response {
        guard let token = configuration.controlToken, !token.isEmpty else {
            return Responses.error(HandlerError(status: 403, "repository control needs a token (--control-token)"))
        }
        guard request.headers[.authorization] == "Bearer \(token)" else {
            return Responses.error(HandlerError(status: 401, "missing or wrong bearer token"))
        }
        return await Responses.measured(model: "", route: "repository", maxBodyBytes: configuration.maxBodyBytes, body)
    }
}
