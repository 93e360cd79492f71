// Package credentialheadersextension sets the installation credential on the exporter's requests.
//
// It is an HTTP client authenticator (exporter `auth.authenticator`): each outgoing request to
// the ingest gets the header named by metadata_key, with the value found under that key in the
// request context's client metadata. The persistent sending queue keeps that metadata across
// restarts, so a report sent after a restart still carries its own installation's credential.
//
// ingest_url names the ingest: it must be an absolute http or https URL (so a gateway without
// one refuses to start instead of acknowledging reports it can never deliver), and the
// credential is set only on requests to that scheme, host and port.
//
// It stands in for the contrib headers_setter extension (from_context), which the Go module
// proxy here does not serve at the collector release this distribution pins.
package credentialheadersextension // import "otel-usage.local/collector/credentialheadersextension"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
)

// Config names the metadata key that is copied into the outgoing header of the same name, and
// the ingest the credential is for.
type Config struct {
	MetadataKey string `mapstructure:"metadata_key"`
	IngestURL   string `mapstructure:"ingest_url"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	if _, err := ingestOrigin(c.IngestURL); err != nil {
		return err
	}
	return nil
}

// ingestOrigin is the scheme and host (with its port) of an absolute http(s) URL.
func ingestOrigin(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("ingest_url must be set (OTEL_USAGE_INGEST_URL): the ingest's base URL, such as http://ingest.internal:8000")
	}
	parsed, err := url.Parse(raw)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil, fmt.Errorf("ingest_url %q (OTEL_USAGE_INGEST_URL) must be an absolute http or https URL, such as http://ingest.internal:8000", raw)
	}
	return &url.URL{Scheme: parsed.Scheme, Host: parsed.Host}, nil
}

// NewFactory returns the factory of the "credential_headers" extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(
		component.MustNewType("credential_headers"),
		func() component.Config { return &Config{} },
		func(_ context.Context, _ extension.Settings, cfg component.Config) (extension.Extension, error) {
			config := cfg.(*Config)
			origin, err := ingestOrigin(config.IngestURL)
			if err != nil {
				return nil, err
			}
			return &credentialHeaders{key: http.CanonicalHeaderKey(config.MetadataKey), origin: origin}, nil
		},
		component.StabilityLevelAlpha,
	)
}

type credentialHeaders struct {
	component.StartFunc
	component.ShutdownFunc
	key    string
	origin *url.URL
}

var _ extensionauth.HTTPClient = (*credentialHeaders)(nil)

// RoundTripper wraps the exporter's transport.
func (e *credentialHeaders) RoundTripper(base http.RoundTripper) (http.RoundTripper, error) {
	return &roundTripper{base: base, key: e.key, origin: e.origin}, nil
}

type roundTripper struct {
	base   http.RoundTripper
	key    string
	origin *url.URL
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	values := client.FromContext(req.Context()).Metadata.Get(rt.key)
	if len(values) != 1 || !strings.EqualFold(req.URL.Scheme, rt.origin.Scheme) ||
		!strings.EqualFold(req.URL.Host, rt.origin.Host) {
		// Sent without it: the ingest refuses it (401), a permanent error, and the queue drops it.
		return rt.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set(rt.key, values[0])
	return rt.base.RoundTrip(req)
}
