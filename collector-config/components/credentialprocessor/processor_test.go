package credentialprocessor

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const key = "X-Otel-Usage-Credential"

// recorder is the next consumer: it keeps the client info of each call.
type recorder struct{ infos []client.Info }

func newProcessor(t *testing.T, rec *recorder) processor.Metrics {
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
	p, err := createMetrics(context.Background(), processor.Settings{}, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	return p
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
