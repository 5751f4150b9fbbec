package meterbill

// Test-only access to unexported options.
var (
	WithRetryBackoff = withRetryBackoff
	WithClock        = withClock
)
