package credentialheadersextension

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
)

const key = "X-Otel-Usage-Credential"

// recordingTransport answers status (204 when unset) and keeps each request it was given.
type recordingTransport struct {
	requests []*http.Request
	status   int
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.requests = append(r.requests, req)
	status := r.status
	if status == 0 {
		status = http.StatusNoContent
	}
	return &http.Response{StatusCode: status, Body: http.NoBody, Request: req}, nil
}

func newExtension(t *testing.T, ingestURL string, maxErased int) *credentialHeaders {
	t.Helper()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.MetadataKey, cfg.IngestURL = "x-otel-usage-credential", ingestURL
	if maxErased > 0 {
		cfg.MaxErased = maxErased
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), extension.Settings{
		ID: component.MustNewID("credential_headers"),
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ext.(*credentialHeaders)
}

func newRoundTripper(t *testing.T, ingestURL string, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	var ext extensionauth.HTTPClient = newExtension(t, ingestURL, 0)
	rt, err := ext.RoundTripper(base)
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
		err := (&Config{MetadataKey: key, IngestURL: url, ErasedStatus: 410, MaxErased: 1}).Validate()
		if (err == nil) != ok {
			t.Errorf("Validate(ingest_url=%q) = %v, want ok=%v", url, err, ok)
		}
	}
	if err := (&Config{IngestURL: "http://ingest.internal", ErasedStatus: 410, MaxErased: 1}).Validate(); err == nil {
		t.Errorf("Validate accepted an empty metadata_key")
	}
}

// erasedAfter sends one request per credential to url, each answered status, and tells which of
// the asked credentials the extension then holds as erased.
func erasedAfter(t *testing.T, ext *credentialHeaders, url string, status int, sent []string, asked ...string) []string {
	t.Helper()
	base := &recordingTransport{status: status}
	rt, err := ext.RoundTripper(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, credential := range sent {
		roundTrip(t, rt, base, request(t, url, credential))
	}
	erased := []string{}
	for _, credential := range asked {
		if ext.Erased(credential) {
			erased = append(erased, credential)
		}
	}
	return erased
}

func TestRemembersTheCredentialsTheIngestAnswersErased(t *testing.T) {
	ext := newExtension(t, "http://ingest.internal:8000", 0)
	const ingest = "http://ingest.internal:8000/v1/metrics"
	got := erasedAfter(t, ext, ingest, http.StatusGone, []string{"gone-1", "gone-2"}, "gone-1", "gone-2", "other")
	if !slices.Equal(got, []string{"gone-1", "gone-2"}) {
		t.Errorf("erased %v, want [gone-1 gone-2]", got)
	}
	for _, status := range []int{http.StatusOK, http.StatusForbidden, http.StatusUnauthorized, http.StatusBadRequest} {
		if got := erasedAfter(t, ext, ingest, status, []string{"kept"}, "kept"); len(got) != 0 {
			t.Errorf("a %d answer made %v erased", status, got)
		}
	}
}

func TestLearnsNothingFromAnswersOfAnotherHost(t *testing.T) {
	ext := newExtension(t, "http://ingest.internal:8000", 0)
	got := erasedAfter(t, ext, "http://other.internal:8000/v1/metrics", http.StatusGone, []string{"secret"}, "secret")
	if len(got) != 0 {
		t.Errorf("erased %v after a request that did not carry the credential", got)
	}
}

func TestForgetsTheOldestBeyondMaxErased(t *testing.T) {
	ext := newExtension(t, "http://ingest.internal:8000", 2)
	const ingest = "http://ingest.internal:8000/v1/metrics"
	got := erasedAfter(t, ext, ingest, http.StatusGone, []string{"a", "b", "b", "c"}, "a", "b", "c")
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("erased %v, want [b c]", got)
	}
	got = erasedAfter(t, ext, ingest, http.StatusGone, []string{"d"}, "a", "b", "c", "d")
	if !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("erased %v, want [c d]", got)
	}
}

func TestKeepsHashesNotCredentials(t *testing.T) {
	ext := newExtension(t, "http://ingest.internal:8000", 0)
	erasedAfter(t, ext, "http://ingest.internal:8000/v1/metrics", http.StatusGone, []string{"secret"})
	want := sha256.Sum256([]byte("secret"))
	if _, ok := ext.erased.hashes[want]; !ok || len(ext.erased.hashes) != 1 || !slices.Equal(ext.erased.order, [][sha256.Size]byte{want}) {
		t.Errorf("remembered %v, want only the SHA-256 of the credential", ext.erased.order)
	}
}

func TestConfigNeedsAnErasedStatusAndABound(t *testing.T) {
	base := Config{MetadataKey: key, IngestURL: "http://ingest.internal:8000", ErasedStatus: 410, MaxErased: 1}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"status 0":   func(c *Config) { c.ErasedStatus = 0 },
		"status 200": func(c *Config) { c.ErasedStatus = 200 },
		"status 503": func(c *Config) { c.ErasedStatus = 503 },
		"bound 0":    func(c *Config) { c.MaxErased = 0 },
	} {
		cfg := base
		change(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, cfg)
		}
	}
}

// BenchmarkErasedAtTheBound measures a check against a full set of 100,000 remembered
// credentials and the heap the set holds (go test -run '^$' -bench . ./credentialheadersextension);
// it prints figures and asserts none.
func BenchmarkErasedAtTheBound(b *testing.B) {
	const limit = 100000
	credentials := make([]string, 2*limit)
	for i := range credentials {
		credentials[i] = fmt.Sprintf("credential-%032d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set := newErasedSet(limit)
	for _, credential := range credentials { // full, and then half of it replaced
		set.add(credential)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	for i := 0; b.Loop(); i++ {
		set.contains(credentials[i%len(credentials)])
	}
	b.ReportMetric(held, "MiB-held")
}

const pseudonymKey = "X-Otel-Usage-Client"
const pseudonym = "0123456789abcdef0123456789abcdef"

// sentWithPseudonym round-trips a request carrying metadata md to url through an extension
// configured with a pseudonym key, and returns the request the transport was given.
func sentWithPseudonym(t *testing.T, url string, md map[string][]string) *http.Request {
	t.Helper()
	cfg := &Config{MetadataKey: key, PseudonymKey: "x-otel-usage-client", IngestURL: "http://ingest.internal:8000",
		ErasedStatus: http.StatusGone, MaxErased: 10}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), extension.Settings{
		ID: component.MustNewID("credential_headers"),
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := &recordingTransport{}
	rt, err := ext.(extensionauth.HTTPClient).RoundTripper(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := client.NewContext(context.Background(), client.Info{Metadata: client.NewMetadata(md)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if req.Header.Get(pseudonymKey) != "" {
		t.Errorf("the caller's request was changed")
	}
	return base.requests[0]
}

func TestSetsThePseudonymNextToTheCredentialOnRequestsToTheIngest(t *testing.T) {
	sent := sentWithPseudonym(t, "http://ingest.internal:8000/v1/metrics",
		map[string][]string{key: {"secret"}, pseudonymKey: {pseudonym}})
	if sent.Header.Get(key) != "secret" || sent.Header.Get(pseudonymKey) != pseudonym {
		t.Errorf("headers %v, want the credential and the pseudonym", sent.Header)
	}
}

func TestNeverSendsThePseudonymElsewhereNorWithoutOneValue(t *testing.T) {
	sent := sentWithPseudonym(t, "http://other.internal:8000/v1/metrics",
		map[string][]string{key: {"secret"}, pseudonymKey: {pseudonym}})
	if len(sent.Header) != 0 {
		t.Errorf("another host got headers %v", sent.Header)
	}
	for name, md := range map[string]map[string][]string{
		"none": {key: {"secret"}},
		"two":  {key: {"secret"}, pseudonymKey: {pseudonym, pseudonym}},
	} {
		sent := sentWithPseudonym(t, "http://ingest.internal:8000/v1/metrics", md)
		if sent.Header.Get(key) != "secret" || len(sent.Header.Values(pseudonymKey)) != 0 {
			t.Errorf("%s: headers %v, want the credential only", name, sent.Header)
		}
	}
}

func TestConfigNeedsTwoDifferentKeys(t *testing.T) {
	err := (&Config{MetadataKey: key, PseudonymKey: "x-otel-usage-credential",
		IngestURL: "http://ingest.internal", ErasedStatus: http.StatusGone, MaxErased: 10}).Validate()
	if err == nil {
		t.Errorf("Validate accepted the credential's key as the pseudonym's")
	}
}
