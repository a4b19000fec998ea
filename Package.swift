// swift-tools-version:6.1
// ockam-edge: a low-footprint edge agent that speaks Ockam's routing and secure-channel protocols.
//
// Layers, top to bottom. A target depends only on targets in lower rows, or in its own row to its right; only the
// transports, EdgeControl and EdgeAgent (which owns the event loop group) see NIOPosix (EdgeNIO only NIOCore), and
// nothing in Sources imports Foundation.
//
//   executables  ockam-edge (OckamEdge, @main: argv → configuration → runtime), ble-rig-driver, OckamEdgeBench,
//                OckamEdgeFuzz (over EdgeFuzz)
//   agent        EdgeAgent           the runtime: vault, node, transports, channels, pairing, device links, relays,
//                                    portals, bridges, metrics and control socket, started from one AgentConfig
//   services     EdgeJetStream       the ingest service's JetStream sink (its libnats part only with trait JetStream)
//                EdgeBridge          device bridges with store-and-forward, and the ingest service
//   transports   EdgeTransportTCP, EdgeTransportSerial, EdgeTransportBLE (swift-nio); EdgeControl (control socket);
//                EdgeNIO (swift-nio helpers they share)
//   channels     EdgeSecureChannel   Noise XX with Ockam identities: listeners, encryptors, decryptors, access control
//   runtime      EdgeNode            workers, bounded mailboxes, router with flow control, echo and uppercase
//   state        EdgeIdentityStore, EdgeVault (file vault), EdgeQueue (crash-safe store-and-forward queue)
//   support      EdgeLog (log formats), EdgeCLI (argv, help, completions, man pages)
//   protocol     EdgeNoise, EdgeIdentity, EdgeRouting, EdgeWire (CBOR, BARE, JSON), EdgeConfig (YAML subset, keys)
//   platform     EdgeCrypto (libsodium + OpenSSL libcrypto), EdgePOSIX (typed system calls), EdgeSync (locks)
//   C            CSodium, COpenSSL, CBlueZ (header-only, never linked), CPty, CMemory, CSanitizerHooks,
//                CNATS (libnats; linked only with trait JetStream)
//
// Trait JetStream (off by default: `swift build --traits JetStream`, `make test-jetstream`) builds the ingest sink
// that publishes to NATS JetStream and links libnats; the default build, and so the gateway binary, does neither.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "ockam-edge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ockam-edge", targets: ["OckamEdge"]),
        .library(name: "EdgeWire", targets: ["EdgeWire"]),
        .library(name: "EdgeRouting", targets: ["EdgeRouting"]),
        .library(name: "EdgeNode", targets: ["EdgeNode"]),
        .library(name: "EdgeTransportTCP", targets: ["EdgeTransportTCP"]),
        .library(name: "EdgeCrypto", targets: ["EdgeCrypto"]),
        .library(name: "EdgeIdentity", targets: ["EdgeIdentity"]),
        .library(name: "EdgeNoise", targets: ["EdgeNoise"]),
        .library(name: "EdgeVault", targets: ["EdgeVault"]),
        .library(name: "EdgeQueue", targets: ["EdgeQueue"]),
        .library(name: "EdgeTransportSerial", targets: ["EdgeTransportSerial"]),
        .library(name: "EdgeTransportBLE", targets: ["EdgeTransportBLE"]),
        .executable(name: "ble-rig-driver", targets: ["BLERigDriver"]),
        .library(name: "EdgeSecureChannel", targets: ["EdgeSecureChannel"]),
    ],
    traits: [
        .trait(name: "JetStream", description: "The ingest service's NATS JetStream sink (links libnats; docs/fleet.md)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // MARK: - C system libraries
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Only targets built with trait JetStream depend on it (EdgeJetStream's dependency is conditional).
        .systemLibrary(
            name: "CNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        // Header-only on purpose: no pkgConfig, so libbluetooth (GPL) is never linked.
        .systemLibrary(
            name: "CBlueZ",
            providers: [.apt(["libbluetooth-dev"])]
        ),
        // Header-only: ThreadSanitizer's lock annotations as weak symbols (EdgeSync).
        .systemLibrary(name: "CSanitizerHooks"),
        .target(name: "EdgeSync", dependencies: ["CSanitizerHooks"], swiftSettings: strict),
        .target(
            name: "EdgePOSIX",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),

        // MARK: - Pure protocol cores
        .target(name: "EdgeWire", swiftSettings: strict),
        .target(name: "EdgeRouting", dependencies: ["EdgeWire"], swiftSettings: strict),
        .target(
            name: "EdgeCrypto",
            dependencies: ["CSodium", "COpenSSL", "EdgePOSIX", "EdgeSync"],
            swiftSettings: strict
        ),
        .target(name: "EdgeIdentity", dependencies: ["EdgeWire", "EdgeCrypto"], swiftSettings: strict),
        .target(
            name: "EdgeVault",
            dependencies: [
                "EdgeSync", "EdgeCrypto", "EdgePOSIX", .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeQueue",
            dependencies: ["EdgeSync", "EdgePOSIX", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeIdentityStore",
            dependencies: ["EdgeIdentity", "EdgeVault", "EdgeCrypto", "EdgeWire"],
            swiftSettings: strict
        ),
        .target(name: "EdgeNoise", dependencies: ["EdgeCrypto"], swiftSettings: strict),
        .target(
            name: "EdgeSecureChannel",
            dependencies: [
                "EdgeSync", "EdgeNode", "EdgeRouting", "EdgeIdentity", "EdgeCrypto", "EdgeWire", "EdgeNoise",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeBridge",
            dependencies: [
                "EdgeSync", "EdgeIdentity", "EdgeNode", "EdgeRouting", "EdgeSecureChannel", "EdgeWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeJetStream",
            dependencies: [
                "EdgeBridge", "EdgeSync", "EdgeWire",
                .target(name: "CNATS", condition: .when(traits: ["JetStream"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "EdgeCLI", swiftSettings: strict),
        .target(
            name: "EdgeLog",
            dependencies: ["EdgePOSIX", "EdgeWire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(name: "EdgeConfig", swiftSettings: strict),

        // MARK: - Runtime and transports
        .target(
            name: "EdgeNode",
            dependencies: [
                "EdgeSync", "EdgeRouting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeNIO",
            dependencies: ["EdgeSync", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeTransportTCP",
            dependencies: [
                "EdgeSync", "EdgeNode", "EdgeNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .target(name: "CPty"),
        .target(name: "CMemory"),
        .target(
            name: "EdgeTransportSerial",
            dependencies: [
                "EdgeSync", "EdgeNode", "EdgeRouting", "EdgeWire", "EdgeConfig", "EdgePOSIX", "CPty",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeTransportBLE",
            dependencies: [
                "EdgeSync", "EdgeNode", "EdgeRouting", "EdgeWire", "EdgePOSIX", "CBlueZ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "BLERigDriver",
            dependencies: [
                "EdgeSync", "EdgeTransportBLE", "EdgeNode", "EdgeRouting", "EdgeWire",
                // The secure-channel rig test: the gateway forwards to a TCP "cloud" node with a secure listener.
                "EdgeTransportTCP", "EdgeSecureChannel", "EdgeIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "hardware/virtual/driver",
            swiftSettings: strict
        ),
        .target(
            name: "EdgeControl",
            dependencies: [
                "EdgeSync", "EdgeWire", "EdgeNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: - Runtime library and executable
        .target(
            name: "EdgeAgent",
            dependencies: [
                "EdgeSync", "EdgeBridge", "EdgeCLI", "EdgeConfig", "EdgeQueue", "EdgeControl", "EdgeIdentity",
                "EdgeIdentityStore", "EdgeVault", "EdgeWire", "EdgeNode", "EdgeRouting", "EdgeSecureChannel",
                "EdgeTransportBLE", "EdgeTransportSerial", "EdgeTransportTCP",
                .target(name: "EdgeJetStream", condition: .when(traits: ["JetStream"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "OckamEdge",
            dependencies: [
                "CMemory", "EdgeAgent", "EdgeSync", "EdgeBridge", "EdgeLog",
                "EdgeCLI",
                "EdgeConfig",
                "EdgeQueue",
                "EdgeControl",
                "EdgeCrypto",
                "EdgeIdentity",
                "EdgeIdentityStore",
                "EdgeVault",
                "EdgeWire",
                "EdgeNode",
                "EdgeSecureChannel",
                "EdgeTransportBLE",
                "EdgeTransportSerial",
                "EdgeTransportTCP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // MARK: - Fuzzing (see `make fuzz`)
        .target(
            name: "EdgeFuzz",
            dependencies: [
                "EdgeRouting", "EdgeTransportTCP", "EdgeWire",
                "EdgeCrypto", "EdgeIdentity", "EdgeNoise", "EdgeSecureChannel", "EdgeControl", "EdgeQueue", "EdgeBridge", "EdgeIdentityStore", "EdgeConfig", "EdgeTransportSerial", "EdgeTransportBLE",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "OckamEdgeFuzz",
            dependencies: ["EdgeFuzz"],
            swiftSettings: strict  // `make fuzz` adds -sanitize=fuzzer,address and -DFUZZING
        ),

        // MARK: - Benchmarks (see `make bench` and bench/README.md)
        .executableTarget(
            name: "OckamEdgeBench",
            dependencies: [
                "EdgeSync", "CSodium", "EdgeCrypto", "EdgeIdentity", "EdgeNoise", "EdgeNode", "EdgeRouting", "EdgeSecureChannel",
                "EdgeTransportBLE", "EdgeTransportSerial", "EdgeTransportTCP", "EdgeWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // MARK: - Tests
        .executableTarget(
            name: "StoreStressChild",
            dependencies: ["EdgeSync", "EdgeVault", "EdgeQueue", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/StoreStressChild",
            swiftSettings: strict
        ),
        .testTarget(
            name: "EdgeVaultTests",
            dependencies: [
                "EdgeVault", "EdgeCrypto", "EdgeTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "EdgeQueueTests",
            dependencies: [
                "EdgeSync", "EdgeQueue", "EdgeTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "EdgeTestSupport",
            dependencies: [
                "EdgeSync", "EdgeWire", .product(name: "Logging", package: "swift-log"),
                .target(name: "CNATS", condition: .when(traits: ["JetStream"])),
            ],
            path: "Tests/EdgeTestSupport"),
        .testTarget(name: "EdgeWireTests", dependencies: ["EdgeWire", "EdgeTestSupport"]),
        .testTarget(name: "EdgeRoutingTests", dependencies: ["EdgeRouting", "EdgeTestSupport"]),
        .testTarget(
            name: "EdgeNodeTests",
            dependencies: ["EdgeSync", "EdgeNode", "EdgeTestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "EdgeTransportTCPTests",
            dependencies: [
                "EdgeSync", "EdgeTransportTCP", "EdgeNIO", "EdgeTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "EdgeCLITests", dependencies: ["EdgeCLI"]),
        .testTarget(name: "EdgeConfigTests", dependencies: ["EdgeConfig"]),
        .testTarget(name: "EdgeLogTests", dependencies: ["EdgeLog", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "EdgeTransportBLETests",
            dependencies: [
                "EdgeSync", "EdgeTransportBLE", "EdgeTestSupport", "EdgeNode", "EdgeRouting", "EdgeWire", "CBlueZ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EdgeTransportSerialTests",
            dependencies: [
                "EdgeSync", "EdgeTransportSerial", "CPty", "EdgeTestSupport", "EdgeNode", "EdgeRouting", "EdgeWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(name: "EdgeFuzzTests", dependencies: ["EdgeFuzz", "EdgeTestSupport"]),
        .testTarget(name: "EdgeCryptoTests", dependencies: ["EdgeSync", "EdgeCrypto", "EdgeTestSupport"]),
        .testTarget(name: "EdgeIdentityTests", dependencies: ["EdgeIdentity", "EdgeTestSupport"]),
        .testTarget(
            name: "EdgeIdentityStoreTests",
            dependencies: [
                "EdgeIdentityStore", "EdgeIdentity", "EdgeVault", "EdgeWire", "EdgeTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(name: "EdgeNoiseTests", dependencies: ["EdgeNoise", "EdgeCrypto", "EdgeTestSupport"]),
        .testTarget(
            name: "EdgeSecureChannelTests",
            dependencies: [
                "EdgeSync", "EdgeSecureChannel", "EdgeTransportTCP", "EdgeTestSupport", "EdgeNoise",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EdgeBridgeTests",
            dependencies: [
                "EdgeSync", "EdgeBridge", "EdgeTransportTCP", "EdgeTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The naming tests always run; the tests against a real nats-server only with trait JetStream.
        .testTarget(
            name: "EdgeJetStreamTests",
            dependencies: [
                "EdgeJetStream", "EdgeBridge", "EdgeNode", "EdgeRouting", "EdgeTestSupport", "EdgeWire",
                .target(name: "CNATS", condition: .when(traits: ["JetStream"])),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "EdgeControlTests", dependencies: ["EdgeControl", "EdgeWire"]),
        .testTarget(
            name: "EdgeAgentTests",
            dependencies: [
                "EdgeAgent", "EdgeConfig", "EdgeControl", "EdgeTestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "OckamEdgeCLITests", dependencies: ["EdgeTestSupport"]),
    ]
)
