// swift-tools-version:6.1
// The device kit's host build: the same DeviceKit sources the firmware compiles with Embedded Swift, built for Linux
// so their tests run in seconds. The firmware itself is built by device/build-firmware.sh, not by SwiftPM.
import PackageDescription

let package = Package(
    name: "ockam-edge-device",
    products: [.library(name: "DeviceKit", targets: ["DeviceKit"])],
    targets: [
        // SerialFramingCore.swift is a symbolic link to ../Sources/EdgeTransportSerial/SerialFramingCore.swift:
        // the gateway and the device compile one file.
        .target(name: "DeviceKit", path: "Sources/DeviceKit"),
        .testTarget(name: "DeviceKitTests", dependencies: ["DeviceKit"], path: "Tests/DeviceKitTests"),
    ]
)
