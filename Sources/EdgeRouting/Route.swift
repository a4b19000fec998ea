// Routes: ordered address lists whose front is the next hop.

/// An ordered list of addresses; the first is the next hop (`ockam_core::Route`).
public struct Route: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var addresses: [Address]

    public init(_ addresses: [Address] = []) { self.addresses = addresses }
    public init(arrayLiteral elements: Address...) { addresses = elements }

    public var isEmpty: Bool { addresses.isEmpty }
    public var count: Int { addresses.count }
    public var first: Address? { addresses.first }

    /// Removes and returns the next hop.
    @discardableResult
    public mutating func popFront() -> Address? {
        addresses.isEmpty ? nil : addresses.removeFirst()
    }

    public mutating func prepend(_ address: Address) { addresses.insert(address, at: 0) }
    public mutating func append(_ address: Address) { addresses.append(address) }

    public func prepending(_ address: Address) -> Route {
        var copy = self
        copy.prepend(address)
        return copy
    }

    public func appending(_ other: Route) -> Route { Route(addresses + other.addresses) }

    /// Replaces the next hop (used when a transport address resolves to a connection's worker).
    public mutating func replaceFront(with address: Address) {
        if addresses.isEmpty { addresses = [address] } else { addresses[0] = address }
    }

    /// `0#a => 1#host:port => 0#b`, Ockam's display form.
    public var description: String { addresses.map(\.description).joined(separator: " => ") }

    /// Parses Ockam's text form `a => 1#b => c`.
    public init(parsing text: String) throws(RoutingError) {
        var result: [Address] = []
        for part in text.split(separator: "=>") {
            let trimmed = part.trimmingWhitespace()
            result.append(try Address(parsing: trimmed))
        }
        addresses = result
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var view = self[...]
        while let c = view.first, c.isWhitespace { view = view.dropFirst() }
        while let c = view.last, c.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}

/// Metadata attached to a message inside a node; never sent on a transport (`ockam_core::LocalInfo`).
public struct LocalInfo: Hashable, Sendable {
    public var typeIdentifier: String
    public var data: [UInt8]
    public init(typeIdentifier: String, data: [UInt8]) {
        self.typeIdentifier = typeIdentifier
        self.data = data
    }
}

/// A message as it travels inside a node: routes, payload and local metadata (`LocalMessage`).
public struct LocalMessage: Sendable, Equatable {
    public var onwardRoute: Route
    public var returnRoute: Route
    public var payload: [UInt8]
    public var localInfo: [LocalInfo]

    public init(onwardRoute: Route, returnRoute: Route, payload: [UInt8], localInfo: [LocalInfo] = []) {
        self.onwardRoute = onwardRoute
        self.returnRoute = returnRoute
        self.payload = payload
        self.localInfo = localInfo
    }

    public func localInfo(for typeIdentifier: String) -> LocalInfo? {
        localInfo.first { $0.typeIdentifier == typeIdentifier }
    }
}
