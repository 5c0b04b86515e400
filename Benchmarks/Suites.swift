/// Every micro suite, in the order they run. Each lives in its own file.
func registeredMicroSuites() -> [MicroSuite] {
    [
    ]
}
