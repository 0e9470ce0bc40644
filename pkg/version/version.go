// Package version holds the release version that every PANORAMIX program reports with --version.
//
// The value is set at link time, for example:
//
//	go build -ldflags "-X github.com/panoramix-mixnet/panoramix/pkg/version.Version=v0.1.0" ./mixd
//
// Builds without that flag report "dev".
package version

// Version is the release version of this build. It is a variable, not a constant, so that the
// linker's -X flag can set it.
var Version = "dev"
