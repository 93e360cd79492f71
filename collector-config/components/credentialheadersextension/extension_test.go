package credentialheadersextension

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
)

const key = "X-Otel-Usage-Credential"

// recordingTransport answers 204 and keeps each request it was given.
type recordingTransport struct{ requests []*http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.requests = append(r.requests, req)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

func newRoundTripper(t *testing.T, ingestURL string, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	cfg := &Config{MetadataKey: "x-otel-usage-credential", IngestURL: ingestURL}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), extension.Settings{
		ID: component.MustNewID("credential_headers"),
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ext.(extensionauth.HTTPClient).RoundTripper(base)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func request(t *testing.T, url string, credentials ...string) *http.Request {
	t.Helper()
	ctx := context.Background()
	if credentials != nil {
		ctx = client.NewContext(ctx, client.Info{
			Metadata: client.NewMetadata(map[string][]string{key: credentials}),
		})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func roundTrip(t *testing.T, rt http.RoundTripper, base *recordingTransport, req *http.Request) string {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	sent := base.requests[len(base.requests)-1]
	if req.Header.Get(key) != "" {
		t.Errorf("the caller's request was changed")
	}
	return sent.Header.Get(key)
}

func TestSetsTheCredentialOnRequestsToTheIngest(t *testing.T) {
	base := &recordingTransport{}
	rt := newRoundTripper(t, "http://ingest.internal:8000", base)
	got := roundTrip(t, rt, base, request(t, "http://INGEST.internal:8000/v1/metrics", "secret"))
	if got != "secret" {
		t.Errorf("header %q, want secret", got)
	}
}

func TestNeverSendsTheCredentialElsewhere(t *testing.T) {
	for _, url := range []string{
		"http://other.internal:8000/v1/metrics",
		"http://ingest.internal:8001/v1/metrics",
		"https://ingest.internal:8000/v1/metrics",
	} {
		base := &recordingTransport{}
		rt := newRoundTripper(t, "http://ingest.internal:8000", base)
		if got := roundTrip(t, rt, base, request(t, url, "secret")); got != "" {
			t.Errorf("%s got the credential %q", url, got)
		}
	}
}

func TestSendsWithoutAHeaderWhenTheContextHasNoSingleCredential(t *testing.T) {
	for name, credentials := range map[string][]string{"none": nil, "two": {"a", "b"}} {
		base := &recordingTransport{}
		rt := newRoundTripper(t, "http://ingest.internal:8000", base)
		if got := roundTrip(t, rt, base, request(t, "http://ingest.internal:8000/v1/metrics", credentials...)); got != "" {
			t.Errorf("%s: header %q, want none", name, got)
		}
	}
}

func TestConfigNeedsAnAbsoluteIngestURL(t *testing.T) {
	cases := map[string]bool{
		"http://ingest.internal:8000":     true,
		"https://ingest.example/base":     true,
		"":                                false,
		"/v1/metrics":                     false,
		"ingest.internal:8000":            false,
		"ftp://ingest.internal":           false,
		"http://":                         false,
		"http://ingest.internal:8000/%zz": false,
	}
	for url, ok := range cases {
		err := (&Config{MetadataKey: key, IngestURL: url}).Validate()
		if (err == nil) != ok {
			t.Errorf("Validate(ingest_url=%q) = %v, want ok=%v", url, err, ok)
		}
	}
	if err := (&Config{IngestURL: "http://ingest.internal"}).Validate(); err == nil {
		t.Errorf("Validate accepted an empty metadata_key")
	}
}
