// `identity`, `vault` and `credential` commands: keys and identities in the file vault, credentials for them.
import EdgeAgent
import EdgeCLI
import EdgeCrypto
import EdgeIdentity
import EdgeIdentityStore
import EdgeVault
import EdgeWire
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

enum VaultOptionsCLI {
    static let vault = OptionSpec(
        "vault", value: "dir", help: "Vault directory ($OCKAM_EDGE_VAULT, $XDG_DATA_HOME/ockam-edge/vault, ~/.local/share/ockam-edge/vault).")
    static let vaultKey = OptionSpec(
        "vault-key", value: "file",
        help: "Key file for a vault encrypted at rest (32 raw bytes or 64 hex; default $CREDENTIALS_DIRECTORY/vault-key if present).")
    static let json = OptionSpec.flag("json", help: "Machine-readable JSON output.")
    static let all = [vault, vaultKey, json]

    static func path(_ arguments: ParsedArguments) throws(CommandFailure) -> FilePath {
        if let explicit = arguments.value("vault") { return FilePath(explicit) }
        guard let path = Vault.defaultPath() else {
            throw CommandFailure("cannot find a vault directory: set --vault, $OCKAM_EDGE_VAULT or $HOME", status: 2)
        }
        return path
    }

    /// `--vault-key`, else `$CREDENTIALS_DIRECTORY/vault-key` when readable (systemd's LoadCredential), else none.
    static func keyFile(_ arguments: ParsedArguments) -> FilePath? {
        if let explicit = arguments.value("vault-key") { return FilePath(explicit) }
        guard let credentials = Support.environment("CREDENTIALS_DIRECTORY") else { return nil }
        let candidate = FilePath(credentials).appending("vault-key")
        return access(candidate.string, R_OK) == 0 ? candidate : nil
    }

    static func options(_ arguments: ParsedArguments) throws -> VaultOptions {
        guard let keyFile = keyFile(arguments) else { return VaultOptions() }
        return VaultOptions(encryptionKey: try Vault.loadEncryptionKey(from: keyFile))
    }

    static func openStore(_ arguments: ParsedArguments) throws -> IdentityStore {
        IdentityStore(vault: try Vault.open(at: path(arguments), options: options(arguments)))
    }
}

enum IdentityCommands {
    static let keyType = OptionSpec("key-type", value: "type", help: "Primary key type: ed25519 or p256.", default: "ed25519")

    static let spec = CommandSpec(
        "identity", abstract: "Create and inspect Ockam identities kept in the vault.",
        subcommands: [
            CommandSpec(
                "create", abstract: "Create an identity with a new primary key (the first one becomes the default).",
                examples: ["ockam-edge identity create gateway", "ockam-edge identity create sensor-7 --key-type p256 --json"],
                options: [keyType] + VaultOptionsCLI.all,
                arguments: [ArgumentSpec("name", help: "Identity name (default: 'default').", optional: true)]),
            CommandSpec(
                "show", abstract: "Show an identity's identifier (and with --full its change history in hex).",
                examples: ["ockam-edge identity show", "ockam-edge identity show gateway --full"],
                options: [.flag("full", help: "Print the change history as hex (what peers and authorities need).")]
                    + VaultOptionsCLI.all,
                arguments: [ArgumentSpec("name", help: "Identity name (default: the default identity).", optional: true)]),
            CommandSpec(
                "rotate", abstract: "Rotate an identity's primary key; the identifier does not change.",
                examples: ["ockam-edge identity rotate gateway"],
                options: [keyType] + VaultOptionsCLI.all,
                arguments: [ArgumentSpec("name", help: "Identity name (default: the default identity).", optional: true)]),
            CommandSpec(
                "list", abstract: "List identities in the vault.", examples: ["ockam-edge identity list --json"],
                options: VaultOptionsCLI.all),
        ])

    static func json(_ named: NamedIdentity, full: Bool = false) -> JSON {
        var members: [(String, JSON)] = [
            ("name", .string(named.name)), ("identifier", .string(named.identity.identifier.description)),
            ("default", .bool(named.isDefault)), ("key_type", .string(named.identity.primaryKey.keyTypeName)),
            ("changes", .int(Int64(named.identity.changes.count))),
            ("valid_until", .uint(named.identity.latestChange.changeData.attestationsValidUntil)),
        ]
        if full { members.append(("change_history", .string(Hex.encode(named.identity.encodedHistory)))) }
        return .object(members)
    }

    static func parseKeyType(_ text: String?) throws(CommandFailure) -> SigningKey.Kind {
        switch text ?? "ed25519" {
        case "ed25519": return .ed25519
        case "p256", "ecdsa-p256": return .p256
        default: throw CommandFailure("unknown key type '\(text ?? "")' (ed25519 or p256)", status: 2)
        }
    }

    static func run(_ sub: String, _ arguments: ParsedArguments) throws -> Int32 {
        let store = try VaultOptionsCLI.openStore(arguments)
        defer { store.vault.close() }
        let asJSON = arguments.flag("json")
        switch sub {
        case "create":
            let name = arguments.value("name") ?? "default"
            try NodeDirectory.validate(name: name)
            let named = try store.create(name: name, keyType: parseKeyType(arguments.value("key-type")))
            print(asJSON ? json(named).serialized() : named.identity.identifier.description)
        case "show":
            let named = try store.get(arguments.value("name"))
            if asJSON {
                print(json(named, full: arguments.flag("full")).serialized())
            } else {
                print(arguments.flag("full") ? Hex.encode(named.identity.encodedHistory) : named.identity.identifier.description)
            }
        case "rotate":
            let named = try store.rotate(
                name: try store.get(arguments.value("name")).name, keyType: parseKeyType(arguments.value("key-type")))
            print(asJSON ? json(named).serialized() : "\(named.identity.identifier) now has \(named.identity.changes.count) changes")
        case "list":
            let all = try store.list()
            if asJSON {
                print(JSON.array(all.map { json($0) }).serialized())
            } else {
                for named in all {
                    print("\(named.isDefault ? "*" : " ") \(named.name)\t\(named.identity.identifier)\t\(named.identity.primaryKey.keyTypeName)")
                }
            }
        default: throw CommandFailure("unknown identity command \(sub)", status: 2)
        }
        return 0
    }
}

enum VaultCommands {
    static let spec = CommandSpec(
        "vault", abstract: "Inspect the file vault.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List keys (type, handle, public key) and identity records.",
                examples: ["ockam-edge vault list", "ockam-edge vault list --vault /var/lib/ockam-edge/vault --json"],
                options: VaultOptionsCLI.all),
            CommandSpec(
                "check", abstract: "Report permission, ownership and format problems (exit status 1 if any).",
                discussion: "Checks without opening the vault for use, so it also works while an agent holds it.",
                examples: ["ockam-edge vault check", "ockam-edge vault check --json"],
                options: VaultOptionsCLI.all),
        ])

    static func run(_ sub: String, _ arguments: ParsedArguments) throws -> Int32 {
        let asJSON = arguments.flag("json")
        let path = try VaultOptionsCLI.path(arguments)
        switch sub {
        case "list":
            let vault = try Vault.open(at: path, options: VaultOptionsCLI.options(arguments))
            defer { vault.close() }
            let keys = try vault.listKeys()
            let kinds = try vault.listRecordKinds()
            if asJSON {
                let records: [(String, JSON)] = try kinds.map { kind in
                    (kind, .array(try vault.listRecords(kind: kind).map { .string($0) }))
                }
                print(
                    JSON.object([
                        ("path", .string(path.string)), ("encrypted", .bool(vault.isEncrypted)),
                        (
                            "keys",
                            .array(
                                keys.map {
                                    .object([
                                        ("handle", .string($0.handle.hex)), ("type", .string($0.type.description)),
                                        ("public_key", .string(Hex.encode($0.publicKey))),
                                    ])
                                })
                        ),
                        ("records", .object(records)),
                    ]).serialized())
            } else {
                print("vault \(path)\(vault.isEncrypted ? " (encrypted at rest)" : "")")
                for key in keys { print("  key \(key.type)\t\(key.handle.hex)") }
                for kind in kinds {
                    for name in try vault.listRecords(kind: kind) { print("  record \(kind)/\(name)") }
                }
            }
            return 0
        case "check":
            let inspection = Vault.inspect(at: path, options: (try? VaultOptionsCLI.options(arguments)) ?? VaultOptions())
            var problems = inspection.problems.map {
                (kind: $0.kind.rawValue, path: $0.path.string, problem: $0.problem, fix: $0.fix, text: $0.description)
            }
            // Identity keys whose records are gone: a node would refuse to start on this vault (docs/vault.md).
            let identityRecords = inspection.recordCounts[IdentityStore.identityRecordKind, default: 0]
            if IdentityStore.keysOutliveTheirIdentities(inspection.keyTypes, identityRecords: identityRecords) {
                let records = path.appending("records").appending(IdentityStore.identityRecordKind).string
                let problem = "\(records) is empty, but the vault holds \(inspection.keyTypes.count) keys of identities (were records/ deleted?)"
                let fix = "restore records/ from a backup; to start afresh on purpose: ockam-edge identity create default"
                problems.append((kind: "identity", path: records, problem: problem, fix: fix, text: "\(problem) (\(fix))"))
            }
            if asJSON {
                print(
                    JSON.object([
                        ("path", .string(path.string)), ("ok", .bool(problems.isEmpty)),
                        (
                            "problems",
                            .array(
                                problems.map {
                                    .object([
                                        ("kind", .string($0.kind)), ("path", .string($0.path)),
                                        ("problem", .string($0.problem)), ("fix", .string($0.fix)),
                                    ])
                                })
                        ),
                    ]).serialized())
            } else if problems.isEmpty {
                print("vault \(path): ok")
            } else {
                for problem in problems { print(problem.text) }
            }
            return problems.isEmpty ? 0 : 1
        default: throw CommandFailure("unknown vault command \(sub)", status: 2)
        }
    }
}

enum CredentialCommands {
    static let spec = CommandSpec(
        "credential", abstract: "Issue, verify and inspect Ockam credentials.",
        subcommands: [
            CommandSpec(
                "issue", abstract: "Issue a credential as an authority (prints the credential as hex).",
                discussion: """
                    The authority signs with its credential purpose key (created on first use). The subject is given
                    by its change history (hex, from 'identity show --full'), so the credential binds its latest change.
                    """,
                examples: [
                    "ockam-edge credential issue --as authority --for $(ockam-edge identity show sensor --full) --attribute role=sensor",
                ],
                options: [
                    OptionSpec("as", value: "identity", help: "Authority identity name in the vault (default: default)."),
                    OptionSpec("for", value: "change-history-hex", help: "The subject's change history."),
                    OptionSpec("attribute", value: "key=value", help: "An attribute.", repeatable: true),
                    OptionSpec("ttl", value: "duration", help: "Lifetime (e.g. 30d, 12h, 3600s).", default: "30d"),
                ] + VaultOptionsCLI.all),
            CommandSpec(
                "verify", abstract: "Verify a credential against an authority (exit status 1 if invalid).",
                examples: [
                    "ockam-edge credential verify <hex> --authority $(ockam-edge identity show authority --full) --subject I…",
                ],
                options: [
                    OptionSpec("authority", value: "change-history-hex", help: "The authority's change history."),
                    OptionSpec("subject", value: "identifier", help: "Expected subject (default: the one in the credential)."),
                    VaultOptionsCLI.json,
                ],
                arguments: [ArgumentSpec("credential", help: "Credential hex.")]),
            CommandSpec(
                "show", abstract: "Decode a credential without verifying it.",
                examples: ["ockam-edge credential show <hex> --json"], options: [VaultOptionsCLI.json],
                arguments: [ArgumentSpec("credential", help: "Credential hex.")]),
            CommandSpec(
                "store", abstract: "Store a credential for an identity to present in secure-channel handshakes.",
                examples: ["ockam-edge credential store <hex> --identity sensor"],
                options: [OptionSpec("identity", value: "name", help: "Holder identity (default: the default identity).")]
                    + VaultOptionsCLI.all,
                arguments: [ArgumentSpec("credential", help: "Credential hex.")]),
        ])

    static func parseTTL(_ text: String) throws(CommandFailure) -> Timestamp {
        let units: [(String, Timestamp)] = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Timestamp(text.dropLast()), n > 0 { return n * factor }
        }
        if let n = Timestamp(text), n > 0 { return n }
        throw CommandFailure("invalid ttl '\(text)' (examples: 30d, 12h, 3600s)", status: 2)
    }

    static func decodeCredential(_ hex: String?) throws(CommandFailure) -> CredentialAndPurposeKey {
        guard let hex, let bytes = Hex.decode(hex) else { throw CommandFailure("the credential must be hex", status: 2) }
        do {
            return try CredentialAndPurposeKey(decoding: bytes)
        } catch {
            throw CommandFailure("not a credential: \(error)")
        }
    }

    static func json(_ credential: CredentialAndPurposeKey) -> JSON {
        let body = credential.credential.credentialData
        return .object([
            ("subject", body.subject.map { .string($0.description) } ?? .null),
            ("issuer", .string(credential.issuer.description)), ("schema", .uint(body.attributes.schema)),
            ("attributes", .object(body.attributes.strings.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("created_at", .uint(body.createdAt)), ("expires_at", .uint(body.expiresAt)),
        ])
    }

    static func run(_ sub: String, _ arguments: ParsedArguments) throws -> Int32 {
        let asJSON = arguments.flag("json")
        switch sub {
        case "issue":
            let subject = try Identity.decoding(hex: arguments.value("for"), what: "--for")
            var attributes: [String: String] = [:]
            for pair in arguments.values("attribute") {
                guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                    throw CommandFailure("attribute '\(pair)' must be key=value", status: 2)
                }
                attributes[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            let store = try VaultOptionsCLI.openStore(arguments)
            defer { store.vault.close() }
            let (key, attestation, _) = try store.credentialSigning(for: arguments.value("as"))
            let credential = try CredentialAndPurposeKey.issue(
                subject: subject, attributes: Attributes(strings: attributes), issuerAttestation: attestation,
                credentialSigningKey: key, lifetime: parseTTL(arguments.value("ttl") ?? "30d"))
            let hex = Hex.encode(credential.encode())
            if asJSON {
                guard case .object(var members) = json(credential) else { return 1 }
                members.append(("credential", .string(hex)))
                print(JSON.object(members).serialized())
            } else {
                print(hex)
            }
            return 0
        case "verify":
            let credential = try decodeCredential(arguments.value("credential"))
            let authority = try Identity.decoding(hex: arguments.value("authority"), what: "--authority")
            let subject: Identifier
            if let text = arguments.value("subject") {
                subject = try Identifier(parsing: text)
            } else if let inCredential = credential.subject {
                subject = inCredential
            } else {
                throw CommandFailure("the credential has no subject")
            }
            do {
                try credential.verify(subject: subject, authorities: [authority])
            } catch {
                if asJSON {
                    print(JSON.object([("valid", .bool(false)), ("reason", .string("\(error)"))]).serialized())
                } else {
                    Console.error("invalid credential: \(error)")
                }
                return 1
            }
            print(asJSON ? JSON.object([("valid", .bool(true)), ("credential", json(credential))]).serialized() : "valid")
            return 0
        case "show":
            let credential = try decodeCredential(arguments.value("credential"))
            if asJSON {
                print(json(credential).serialized())
            } else {
                let body = credential.credential.credentialData
                print("subject:    \(body.subject.map(\.description) ?? "none")")
                print("issuer:     \(credential.issuer)")
                for (k, v) in body.attributes.strings.sorted(by: { $0.key < $1.key }) { print("attribute:  \(k)=\(v)") }
                print("created_at: \(body.createdAt)")
                print("expires_at: \(body.expiresAt)")
            }
            return 0
        case "store":
            let credential = try decodeCredential(arguments.value("credential"))
            let store = try VaultOptionsCLI.openStore(arguments)
            defer { store.vault.close() }
            let holder = try store.get(arguments.value("identity"))
            guard credential.subject == holder.identity.identifier else {
                throw CommandFailure("the credential is for \(credential.subject.map(\.description) ?? "nobody"), not \(holder.identity.identifier)")
            }
            try credential.verifySignature()
            try store.storeCredential(credential, for: holder.name)
            print(asJSON ? JSON.object([("stored", .bool(true)), ("identity", .string(holder.name))]).serialized() : "stored for \(holder.name)")
            return 0
        default: throw CommandFailure("unknown credential command \(sub)", status: 2)
        }
    }
}
