import Testing

@testable import EdgeTransportBLE

@Suite("BLE security retry")
struct SecurityRetryTests {
    @Test func onlyALinkBelowTheAskedSecurityIsRetriedAndOnlyAsOftenAsConfigured() {
        let retry = BLESecurityRetry(retries: 2, pause: .milliseconds(700))
        let low = BLETransportError.insufficientSecurity(peer: "00:AA:01:01:00:01/public,psm=0x83", link: .low, required: .medium)
        #expect(retry.pause(after: low, retries: 0) == .milliseconds(700))
        #expect(retry.pause(after: low, retries: 1) == .milliseconds(700))
        #expect(retry.pause(after: low, retries: 2) == nil)
        for other: BLETransportError in [
            .connectTimeout(peer: "x", .seconds(20)), .connectFailed(peer: "x", errno: 111), .shutDown,
        ] {
            #expect(retry.pause(after: other, retries: 0) == nil, "\(other)")
        }
        #expect(BLESecurityRetry(retries: 0).pause(after: low, retries: 0) == nil)
        #expect(BLETransportOptions().securityRetry.retries > 0)
    }
}
