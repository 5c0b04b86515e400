import XCTest
@testable import Chaos
final class PlaceholderTests: XCTestCase { func testNothing() {} }
