// Package credentialheadersextension sets the installation credential on the exporter's requests.
//
// It is an HTTP client authenticator (exporter `auth.authenticator`): each outgoing request to
// the ingest gets the header named by metadata_key, with the value found under that key in the
// request context's client metadata. The persistent sending queue keeps that metadata across
// restarts, so a report sent after a restart still carries its own installation's credential.
//
// With pseudonym_key set, the client address's pseudonym the credential processor keeps under
// that key is set the same way, as the header of that name, and only on requests to the ingest
// (which heeds it only from its trusted proxies). A request without one is sent without it.
//
// ingest_url names the ingest: it must be an absolute http or https URL (so a gateway without
// one refuses to start instead of acknowledging reports it can never deliver), and the
// credential is set only on requests to that scheme, host and port.
//
// It also learns which credentials belong to erased installations: when the ingest answers a
// request with erased_status (the catalog's `[protocol] erased_status`, 410), it remembers a
// SHA-256 hash of the credential it set on it, at most max_erased of them (the oldest leaves
// first), in memory only. The credential processor asks Erased before the queue and refuses
// later reports of that installation with an answer the client understands. A restart forgets:
// the next report of an erased installation is then delivered, refused, and teaches it again.
//
// It stands in for the contrib headers_setter extension (from_context), which the Go module
// proxy here does not serve at the collector release this distribution pins.
package credentialheadersextension // import "otel-usage.local/collector/credentialheadersextension"

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
)

// Config names the metadata key that is copied into the outgoing header of the same name, and
// the ingest the credential is for.
type Config struct {
	MetadataKey  string `mapstructure:"metadata_key"`
	PseudonymKey string `mapstructure:"pseudonym_key"`
	IngestURL    string `mapstructure:"ingest_url"`
	// ErasedStatus is the ingest's answer to a report of an erased installation.
	ErasedStatus int `mapstructure:"erased_status"`
	// MaxErased bounds how many erased credentials are remembered.
	MaxErased int `mapstructure:"max_erased"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	if strings.EqualFold(c.PseudonymKey, c.MetadataKey) {
		return errors.New("pseudonym_key must differ from metadata_key")
	}
	if _, err := ingestOrigin(c.IngestURL); err != nil {
		return err
	}
	if c.ErasedStatus < 400 || c.ErasedStatus > 499 {
		return errors.New("erased_status must be an HTTP 4xx status")
	}
	if c.MaxErased <= 0 {
		return errors.New("max_erased must be positive")
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
		func() component.Config { return &Config{ErasedStatus: http.StatusGone, MaxErased: 100000} },
		func(_ context.Context, _ extension.Settings, cfg component.Config) (extension.Extension, error) {
			config := cfg.(*Config)
			origin, err := ingestOrigin(config.IngestURL)
			if err != nil {
				return nil, err
			}
			pseudonym := ""
			if config.PseudonymKey != "" {
				pseudonym = http.CanonicalHeaderKey(config.PseudonymKey)
			}
			return &credentialHeaders{
				key: http.CanonicalHeaderKey(config.MetadataKey), pseudonym: pseudonym, origin: origin,
				erased: newErasedSet(config.MaxErased), erasedStatus: config.ErasedStatus,
			}, nil
		},
		component.StabilityLevelAlpha,
	)
}

type credentialHeaders struct {
	component.StartFunc
	component.ShutdownFunc
	key          string
	pseudonym    string // "" when no pseudonym is passed on
	origin       *url.URL
	erased       *erasedSet
	erasedStatus int
}

var _ extensionauth.HTTPClient = (*credentialHeaders)(nil)

// Erased tells whether the ingest answered a request with this credential erased_status (since
// the gateway started, among the last max_erased such credentials).
func (e *credentialHeaders) Erased(credential string) bool {
	return e.erased.contains(credential)
}

// RoundTripper wraps the exporter's transport.
func (e *credentialHeaders) RoundTripper(base http.RoundTripper) (http.RoundTripper, error) {
	return &roundTripper{base: base, key: e.key, pseudonym: e.pseudonym, origin: e.origin, ext: e}, nil
}

type roundTripper struct {
	base      http.RoundTripper
	key       string
	pseudonym string
	origin    *url.URL
	ext       *credentialHeaders
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Scheme, rt.origin.Scheme) ||
		!strings.EqualFold(req.URL.Host, rt.origin.Host) {
		return rt.base.RoundTrip(req)
	}
	metadata := client.FromContext(req.Context()).Metadata
	values := metadata.Get(rt.key)
	if len(values) != 1 {
		// Sent without it: the ingest refuses it (401), a permanent error, and the queue drops it.
		return rt.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set(rt.key, values[0])
	if rt.pseudonym != "" {
		// Without one (a client without a usable address) the ingest counts the gateway's own.
		if pseudonyms := metadata.Get(rt.pseudonym); len(pseudonyms) == 1 {
			req.Header.Set(rt.pseudonym, pseudonyms[0])
		}
	}
	resp, err := rt.base.RoundTrip(req)
	if err == nil && resp.StatusCode == rt.ext.erasedStatus {
		rt.ext.erased.add(values[0])
	}
	return resp, err
}

// erasedSet holds SHA-256 hashes of credentials, at most limit of them; the oldest leaves first.
type erasedSet struct {
	mu     sync.Mutex
	limit  int
	hashes map[[sha256.Size]byte]struct{}
	order  [][sha256.Size]byte // a ring: next is the slot the next new hash takes
	next   int
}

func newErasedSet(limit int) *erasedSet {
	return &erasedSet{limit: limit, hashes: make(map[[sha256.Size]byte]struct{})}
}

func (s *erasedSet) add(credential string) {
	hash := sha256.Sum256([]byte(credential))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.hashes[hash]; ok {
		return
	}
	if len(s.order) < s.limit {
		s.order = append(s.order, hash)
	} else {
		delete(s.hashes, s.order[s.next])
		s.order[s.next] = hash
		s.next = (s.next + 1) % s.limit
	}
	s.hashes[hash] = struct{}{}
}

func (s *erasedSet) contains(credential string) bool {
	hash := sha256.Sum256([]byte(credential))
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.hashes[hash]
	return ok
}
