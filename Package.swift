// swift-tools-version:6.1
import PackageDescription

/// Strict settings for every target of ours: Swift 6 language mode (complete concurrency checking) plus the
/// upcoming features the model codebases enable, so that mistakes are compile errors rather than review topics.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "portal",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "PortalAPI", targets: ["PortalAPI"]),
        .executable(name: "SyncWorker", targets: ["SyncWorker"]),
        .executable(name: "Notifier", targets: ["Notifier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // HTTPRequestPart, for the request timeout handler in the HTTP pipeline.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // ID tokens and access tokens from the OpenID Connect broker: JWS verification against its JWKS.
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        // jwt-kit 5 needs swift-crypto 4; named here too because we use its HMAC and SHA-256 directly.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        // Mail templates that operators can change without a rebuild.
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        // Streaming multipart/form-data parsing for uploads from a browser form.
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        // Tests only: parsing docker-compose.yml to check it against the code.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // Tests only: property-based fuzzing of the parsers (generated input, shrinking, reproducible seeds).
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        .target(
            name: "Shared",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [.copy("Database/Migrations"), .copy("Mail/Templates")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "PortalAPI",
            dependencies: [
                "Shared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ],
            resources: [.copy("Resources/openapi.json")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "SyncWorker",
            dependencies: [
                "Shared",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "Notifier",
            dependencies: [
                "Shared",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],

            swiftSettings: strictSettings
        ),
        // A job-running process for tests and benchmarks: it runs the real JobProcessor with probe job kinds, so
        // tests can SIGKILL a worker that holds jobs and benchmarks can drain a queue through the real code path.
        .executableTarget(
            name: "JobProbe",
            dependencies: [
                "Shared",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Tests/JobProbe",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "QueueBench",
            dependencies: [
                "Shared",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "bench/QueueBench",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PortalTests",
            dependencies: [
                "Shared",
                "PortalAPI",
                "Notifier",
                "SyncWorker",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Test servers written in Python, run by the tests from the source tree.
            exclude: ["Support/smtp_server.py"],
            swiftSettings: strictSettings
        ),
    ]
)
