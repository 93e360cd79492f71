// Package credentialheadersextension sets the installation credential on the exporter's requests.
//
// It is an HTTP client authenticator (exporter `auth.authenticator`): each outgoing request gets
// the header named by metadata_key, with the value found under that key in the request context's
// client metadata. The persistent sending queue keeps that metadata across restarts, so a report
// sent after a restart still carries its own installation's credential.
//
// It stands in for the contrib headers_setter extension (from_context), which the Go module
// proxy here does not serve at the collector release this distribution pins.
package credentialheadersextension // import "otel-usage.local/collector/credentialheadersextension"

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
)

// Config names the metadata key that is copied into the outgoing header of the same name.
type Config struct {
	MetadataKey string `mapstructure:"metadata_key"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	return nil
}

// NewFactory returns the factory of the "credential_headers" extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(
		component.MustNewType("credential_headers"),
		func() component.Config { return &Config{} },
		func(_ context.Context, _ extension.Settings, cfg component.Config) (extension.Extension, error) {
			return &credentialHeaders{key: http.CanonicalHeaderKey(cfg.(*Config).MetadataKey)}, nil
		},
		component.StabilityLevelAlpha,
	)
}

type credentialHeaders struct {
	component.StartFunc
	component.ShutdownFunc
	key string
}

var _ extensionauth.HTTPClient = (*credentialHeaders)(nil)

// RoundTripper wraps the exporter's transport.
func (e *credentialHeaders) RoundTripper(base http.RoundTripper) (http.RoundTripper, error) {
	return &roundTripper{base: base, key: e.key}, nil
}

type roundTripper struct {
	base http.RoundTripper
	key  string
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	values := client.FromContext(req.Context()).Metadata.Get(rt.key)
	if len(values) != 1 {
		// Sent without it: the ingest refuses it (401), a permanent error, and the queue drops it.
		return rt.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set(rt.key, values[0])
	return rt.base.RoundTrip(req)
}
