package credentialprocessor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const key = "X-Otel-Usage-Credential"
const pseudonymKey = "X-Otel-Usage-Client"

// recorder is the next consumer: it keeps the client info of each call.
type recorder struct{ infos []client.Info }

func newProcessor(t *testing.T, rec *recorder) processor.Metrics {
	t.Helper()
	return newProcessorWith(t, rec, "")
}

// newProcessorWith is a started processor, with pseudonyms under pseudonym (unless empty).
func newProcessorWith(t *testing.T, rec *recorder, pseudonym string) *credentialProcessor {
	t.Helper()
	next, err := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		rec.infos = append(rec.infos, client.FromContext(ctx))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.MetadataKey = key
	cfg.PseudonymKey = pseudonym
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := createMetrics(context.Background(), processor.Settings{}, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p.(*credentialProcessor)
}

func withHeaders(headers map[string][]string) context.Context {
	return client.NewContext(context.Background(), client.Info{
		Addr:     &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 50123},
		Metadata: client.NewMetadata(headers),
	})
}

func TestKeepsOnlyTheCredential(t *testing.T) {
	rec := &recorder{}
	ctx := withHeaders(map[string][]string{key: {"secret"}, "X-Printer-Serial": {"01S00A123"}})
	if err := newProcessor(t, rec).ConsumeMetrics(ctx, pmetric.NewMetrics()); err != nil {
		t.Fatal(err)
	}
	if len(rec.infos) != 1 {
		t.Fatalf("next consumer called %d times, want 1", len(rec.infos))
	}
	info := rec.infos[0]
	if info.Addr != nil {
		t.Errorf("the client's address was kept: %v", info.Addr)
	}
	var keys []string
	for k := range info.Metadata.Keys() {
		keys = append(keys, k)
	}
	if len(keys) != 1 || !strings.EqualFold(keys[0], key) {
		t.Errorf("metadata keys %v, want only %s", keys, key)
	}
	if got := info.Metadata.Get(key); len(got) != 1 || got[0] != "secret" {
		t.Errorf("credential %v, want [secret]", got)
	}
}

func TestRefusesWithoutOneCredential(t *testing.T) {
	cases := map[string]map[string][]string{
		"none":  {"X-Printer-Serial": {"01S00A123"}},
		"empty": {key: {""}},
		"two":   {key: {"a", "b"}},
	}
	for name, headers := range cases {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			err := newProcessor(t, rec).ConsumeMetrics(withHeaders(headers), pmetric.NewMetrics())
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("error %v, want Unauthenticated", err)
			}
			if len(rec.infos) != 0 {
				t.Errorf("a refused request reached the next consumer")
			}
		})
	}
}

func TestRefusesWithoutClientInfo(t *testing.T) {
	rec := &recorder{}
	err := newProcessor(t, rec).ConsumeMetrics(context.Background(), pmetric.NewMetrics())
	if status.Code(err) != codes.Unauthenticated || len(rec.infos) != 0 {
		t.Errorf("error %v and %d calls, want Unauthenticated and none", err, len(rec.infos))
	}
}

func TestRefusesATooLongCredential(t *testing.T) {
	rec := &recorder{}
	long := strings.Repeat("x", 257)
	err := newProcessor(t, rec).ConsumeMetrics(withHeaders(map[string][]string{key: {long}}), pmetric.NewMetrics())
	if status.Code(err) != codes.InvalidArgument || len(rec.infos) != 0 {
		t.Errorf("error %v and %d calls, want InvalidArgument and none", err, len(rec.infos))
	}
	rec = &recorder{}
	err = newProcessor(t, rec).ConsumeMetrics(withHeaders(map[string][]string{key: {long[:256]}}), pmetric.NewMetrics())
	if err != nil || len(rec.infos) != 1 {
		t.Errorf("error %v and %d calls for 256 bytes, want none and 1", err, len(rec.infos))
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg Config
		ok  bool
	}{
		{Config{MetadataKey: key, MaxLength: 256}, true},
		{Config{MetadataKey: "", MaxLength: 256}, false},
		{Config{MetadataKey: key, MaxLength: 0}, false},
		{Config{MetadataKey: key, MaxLength: 256, Erasures: erasures, ErasedMessage: erasedMessage}, true},
		{Config{MetadataKey: key, MaxLength: 256, Erasures: erasures}, false},
		{Config{MetadataKey: key, MaxLength: 256, PseudonymKey: pseudonymKey}, true},
		{Config{MetadataKey: key, MaxLength: 256, PseudonymKey: strings.ToLower(key)}, false},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", c.cfg, err, c.ok)
		}
	}
}

const erasedMessage = "otel_usage.installation_erased"

var erasures = component.MustNewID("credential_headers")

// registry is an extension that holds the credentials in it as erased.
type registry struct {
	component.StartFunc
	component.ShutdownFunc
	erased map[string]bool
}

func (r *registry) Erased(credential string) bool { return r.erased[credential] }

// plain is an extension that knows nothing of erasures.
type plain struct {
	component.StartFunc
	component.ShutdownFunc
}

type host struct {
	extensions map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.extensions }

func newErasingProcessor(t *testing.T, rec *recorder, h component.Host) (processor.Metrics, error) {
	t.Helper()
	next, err := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		rec.infos = append(rec.infos, client.FromContext(ctx))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.MetadataKey, cfg.Erasures, cfg.ErasedMessage = key, erasures, erasedMessage
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := createMetrics(context.Background(), processor.Settings{}, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Start(context.Background(), h)
}

func TestRefusesAnErasedCredentialWithTheErasedMessage(t *testing.T) {
	rec := &recorder{}
	h := host{map[component.ID]component.Component{
		component.MustNewID("health_check"): &plain{},
		erasures:                            &registry{erased: map[string]bool{"gone": true}},
	}}
	p, err := newErasingProcessor(t, rec, h)
	if err != nil {
		t.Fatal(err)
	}
	err = p.ConsumeMetrics(withHeaders(map[string][]string{key: {"gone"}}), pmetric.NewMetrics())
	if s, _ := status.FromError(err); s.Code() != codes.PermissionDenied || s.Message() != erasedMessage {
		t.Errorf("error %v, want PermissionDenied with %q", err, erasedMessage)
	}
	if len(rec.infos) != 0 {
		t.Fatalf("an erased installation's request reached the next consumer")
	}
	if err := p.ConsumeMetrics(withHeaders(map[string][]string{key: {"kept"}}), pmetric.NewMetrics()); err != nil {
		t.Fatal(err)
	}
	if len(rec.infos) != 1 {
		t.Errorf("next consumer called %d times, want 1", len(rec.infos))
	}
}

func TestStartNeedsTheNamedExtensionToKnowErasures(t *testing.T) {
	cases := map[string]map[component.ID]component.Component{
		"missing":        {component.MustNewID("health_check"): &plain{}},
		"not a registry": {erasures: &plain{}},
	}
	for name, extensions := range cases {
		if _, err := newErasingProcessor(t, &recorder{}, host{extensions}); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

// pseudonymOf sends one request from addr through p and returns the metadata it passed on.
func pseudonymOf(t *testing.T, p *credentialProcessor, rec *recorder, addr net.Addr,
	headers map[string][]string) client.Metadata {
	t.Helper()
	all := map[string][]string{key: {"secret"}}
	for k, v := range headers {
		all[k] = v
	}
	ctx := client.NewContext(context.Background(), client.Info{Addr: addr, Metadata: client.NewMetadata(all)})
	if err := p.ConsumeMetrics(ctx, pmetric.NewMetrics()); err != nil {
		t.Fatal(err)
	}
	return rec.infos[len(rec.infos)-1].Metadata
}

func single(t *testing.T, md client.Metadata, k string) string {
	t.Helper()
	values := md.Get(k)
	if len(values) != 1 {
		t.Fatalf("%s: %v, want one value", k, values)
	}
	return values[0]
}

func ipAddr(text string) net.Addr { return &net.IPAddr{IP: net.ParseIP(text)} }

func TestKeepsTheCredentialAndAPseudonymOfTheAddressOnly(t *testing.T) {
	rec := &recorder{}
	p := newProcessorWith(t, rec, pseudonymKey)
	md := pseudonymOf(t, p, rec, ipAddr("203.0.113.7"), map[string][]string{"X-Printer-Serial": {"01S00A123"}})
	var keys []string
	for k := range md.Keys() {
		keys = append(keys, strings.ToLower(k))
	}
	if len(keys) != 2 || rec.infos[0].Addr != nil {
		t.Fatalf("metadata keys %v and address %v, want the credential and the pseudonym only", keys, rec.infos[0].Addr)
	}
	got := single(t, md, pseudonymKey)
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte{203, 0, 113, 7})
	want := hex.EncodeToString(mac.Sum(nil)[:16])
	if got != want || len(got) != 32 || got != strings.ToLower(got) {
		t.Errorf("pseudonym %q, want %q (32 lower-case hex digits)", got, want)
	}
	if single(t, md, key) != "secret" {
		t.Errorf("the credential was changed")
	}
}

func TestIPv4IsKeyedByItselfIPv6ByIts64AndMappedIPv6AsIPv4(t *testing.T) {
	rec := &recorder{}
	p := newProcessorWith(t, rec, pseudonymKey)
	of := func(addr net.Addr) string { return single(t, pseudonymOf(t, p, rec, addr, nil), pseudonymKey) }
	v4 := of(ipAddr("203.0.113.7"))
	same := []net.Addr{
		&net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 50123},
		ipAddr("::ffff:203.0.113.7"),
		&net.UDPAddr{IP: net.ParseIP("203.0.113.7"), Port: 1},
	}
	for _, addr := range same {
		if got := of(addr); got != v4 {
			t.Errorf("%v: pseudonym %s, want %s (the same IPv4 address)", addr, got, v4)
		}
	}
	if of(ipAddr("203.0.113.8")) == v4 {
		t.Errorf("two IPv4 addresses share a pseudonym")
	}
	v6 := of(ipAddr("2001:db8:1:2::1"))
	if got := of(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff:eeee:dddd:9"), Port: 443}); got != v6 {
		t.Errorf("one /64 has two pseudonyms: %s and %s", v6, got)
	}
	if of(ipAddr("2001:db8:1:3::1")) == v6 {
		t.Errorf("two /64s share a pseudonym")
	}
}

func TestARequestWithoutAUsableAddressGetsNoPseudonymAndTheClientsOwnIsDropped(t *testing.T) {
	rec := &recorder{}
	p := newProcessorWith(t, rec, pseudonymKey)
	forged := map[string][]string{pseudonymKey: {"0123456789abcdef0123456789abcdef"}}
	for _, addr := range []net.Addr{nil, &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, &net.IPAddr{}} {
		if got := pseudonymOf(t, p, rec, addr, forged).Get(pseudonymKey); got != nil {
			t.Errorf("%v: pseudonym %v, want none", addr, got)
		}
	}
	got := single(t, pseudonymOf(t, p, rec, ipAddr("198.51.100.1"), forged), pseudonymKey)
	if got == forged[pseudonymKey][0] {
		t.Errorf("the client's own pseudonym header was passed on")
	}
}

func TestEachProcessHasItsOwnKeyAndReplacesItAndForgetsItAtShutdown(t *testing.T) {
	rec := &recorder{}
	first := newProcessorWith(t, rec, pseudonymKey)
	second := newProcessorWith(t, rec, pseudonymKey)
	addr := ipAddr("198.51.100.1")
	one := single(t, pseudonymOf(t, first, rec, addr, nil), pseudonymKey)
	if one == single(t, pseudonymOf(t, second, rec, addr, nil), pseudonymKey) {
		t.Errorf("two processes gave one address the same pseudonym")
	}
	// A processor whose key lives 5 ms: a new pseudonym for the same address soon after.
	rec = &recorder{}
	cfg := &Config{MetadataKey: key, MaxLength: 256, PseudonymKey: pseudonymKey}
	next, _ := consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
		rec.infos = append(rec.infos, client.FromContext(ctx))
		return nil
	})
	short := &credentialProcessor{cfg: cfg, next: next, lifetime: 5 * time.Millisecond}
	if err := short.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	before := single(t, pseudonymOf(t, short, rec, addr, nil), pseudonymKey)
	deadline := time.Now().Add(5 * time.Second)
	for single(t, pseudonymOf(t, short, rec, addr, nil), pseudonymKey) == before {
		if time.Now().After(deadline) {
			t.Fatal("the key was not replaced within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := short.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if short.key != nil {
		t.Errorf("the key outlived Shutdown")
	}
	if got := pseudonymOf(t, short, rec, addr, nil).Get(pseudonymKey); got != nil {
		t.Errorf("a pseudonym %v after Shutdown", got)
	}
}
