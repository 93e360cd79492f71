// Package credentialprocessor narrows a request's client context to the installation credential
// and a pseudonym of the client's address.
//
// The OTLP receiver (include_metadata: true) puts every request header and the client's address
// into the request's context, and the exporter's persistent queue writes that context to disk.
// This processor keeps one metadata key, the installation credential, and drops the rest, so
// neither the client's address nor any other header is queued or forwarded. A request without
// exactly one non-empty credential is refused: 401 to the client (gRPC Unauthenticated), or 400
// when the credential is too long.
//
// A request whose credential the extension named by `erasures` (credential_headers) has seen
// answered erased by the ingest is refused before the queue: 403 (gRPC PermissionDenied) with
// erased_message (the catalog's `[protocol] erased_message`) as the google.rpc.Status message the
// receiver writes, which the client takes as its erasure and starts over with a new id.
//
// With pseudonym_key set it adds, under that key, a pseudonym of the client's address, for the
// ingest's limit of new installations per address: HMAC-SHA256 of the address (IPv4 as is, an
// IPv4-mapped IPv6 address as IPv4, other IPv6 by its /64) under a random key made at Start and
// replaced every 24 hours, held only in memory; its first 16 bytes in lower-case hex. The
// address itself is never queued; the pseudonym cannot be turned back into it without the key,
// and links a client's requests for at most a day. A request without a usable address gets no
// pseudonym (the ingest then counts it as the gateway's own).
//
// It replaces the batch processor's metadata_keys for this purpose: the batch processor keeps one
// batcher per distinct value for the life of the process, and every installation has its own
// credential.
package credentialprocessor // import "otel-usage.local/collector/credentialprocessor"

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config names the metadata key (an HTTP request header) that carries the credential.
type Config struct {
	MetadataKey string `mapstructure:"metadata_key"`
	// MaxLength bounds the credential's length in bytes.
	MaxLength int `mapstructure:"max_length"`
	// Erasures names the extension that knows erased credentials (one with an
	// `Erased(credential string) bool` method); none when unset.
	Erasures component.ID `mapstructure:"erasures"`
	// ErasedMessage is the message of the refusal of an erased installation's request.
	ErasedMessage string `mapstructure:"erased_message"`
	// PseudonymKey is the metadata key the client address's pseudonym is kept under (the
	// ingest's request header of that name); empty: no pseudonym.
	PseudonymKey string `mapstructure:"pseudonym_key"`
}

// ErasureRegistry is what the extension named by Erasures offers.
type ErasureRegistry interface {
	Erased(credential string) bool
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	if c.MaxLength <= 0 {
		return errors.New("max_length must be positive")
	}
	if c.Erasures != (component.ID{}) && c.ErasedMessage == "" {
		return errors.New("erased_message must be set with erasures")
	}
	if strings.EqualFold(c.PseudonymKey, c.MetadataKey) {
		return errors.New("pseudonym_key must differ from metadata_key")
	}
	return nil
}

// keyLifetime is how long one pseudonym key is used, from the process's start.
const keyLifetime = 24 * time.Hour

// pseudonymBytes is how much of the HMAC is kept (hex-encoded: twice as many characters).
const pseudonymBytes = 16

// NewFactory returns the factory of the "credential" processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType("credential"),
		func() component.Config { return &Config{MaxLength: 256} },
		processor.WithMetrics(createMetrics, component.StabilityLevelAlpha),
	)
}

func createMetrics(
	_ context.Context, _ processor.Settings, cfg component.Config, next consumer.Metrics,
) (processor.Metrics, error) {
	return &credentialProcessor{cfg: cfg.(*Config), next: next, lifetime: keyLifetime}, nil
}

type credentialProcessor struct {
	cfg      *Config
	next     consumer.Metrics
	erased   ErasureRegistry
	lifetime time.Duration

	mu   sync.RWMutex
	key  []byte        // the pseudonyms' HMAC key, in memory only; nil before Start
	stop chan struct{} // closed at Shutdown: ends the key's replacement
	done chan struct{} // closed when the replacement has ended
}

// Start finds the extension named by Erasures (extensions start before pipelines), and makes
// the first pseudonym key and replaces it every lifetime.
func (p *credentialProcessor) Start(_ context.Context, host component.Host) error {
	if p.cfg.Erasures != (component.ID{}) {
		ext, ok := host.GetExtensions()[p.cfg.Erasures]
		if !ok {
			return fmt.Errorf("erasures: no extension %s is configured", p.cfg.Erasures)
		}
		registry, ok := ext.(ErasureRegistry)
		if !ok {
			return fmt.Errorf("erasures: the extension %s does not know erased credentials", p.cfg.Erasures)
		}
		p.erased = registry
	}
	if p.cfg.PseudonymKey == "" {
		return nil
	}
	if err := p.newKey(); err != nil {
		return err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.replaceKeys(p.stop, p.done)
	return nil
}

// Shutdown ends the key's replacement and forgets the key.
func (p *credentialProcessor) Shutdown(context.Context) error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	p.mu.Lock()
	p.key = nil
	p.mu.Unlock()
	return nil
}

func (p *credentialProcessor) replaceKeys(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(p.lifetime)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			// A failure of the system's random source keeps the old key for another round.
			_ = p.newKey()
		}
	}
}

func (p *credentialProcessor) newKey() error {
	key := make([]byte, sha256.Size)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("making the pseudonym key: %w", err)
	}
	p.mu.Lock()
	p.key = key
	p.mu.Unlock()
	return nil
}

// pseudonym is the client address's pseudonym, or "" without a key or a usable address.
func (p *credentialProcessor) pseudonym(addr net.Addr) string {
	data := addressBytes(addr)
	p.mu.RLock()
	key := p.key
	p.mu.RUnlock()
	if data == nil || key == nil {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	return hex.EncodeToString(mac.Sum(nil)[:pseudonymBytes])
}

// addressBytes is what identifies a client address: IPv4's 4 bytes (also for an IPv4-mapped
// IPv6 address), an IPv6 address's first 8 (its /64, what one household or server gets); nil
// when addr holds no IP address.
func addressBytes(addr net.Addr) []byte {
	var ip net.IP
	switch a := addr.(type) {
	case nil:
		return nil
	case *net.IPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			host = a.String()
		}
		ip = net.ParseIP(host)
	}
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	if v6 := ip.To16(); v6 != nil {
		return v6[:8]
	}
	return nil
}

func (p *credentialProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (p *credentialProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	values := client.FromContext(ctx).Metadata.Get(p.cfg.MetadataKey)
	if len(values) != 1 || values[0] == "" {
		// The OTLP receiver answers an error's gRPC status with its HTTP equivalent.
		return status.Error(codes.Unauthenticated, fmt.Sprintf("the request needs one %s header", p.cfg.MetadataKey))
	}
	if len(values[0]) > p.cfg.MaxLength {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("the %s header is too long", p.cfg.MetadataKey))
	}
	if p.erased != nil && p.erased.Erased(values[0]) {
		return status.Error(codes.PermissionDenied, p.cfg.ErasedMessage)
	}
	// A fresh client.Info: no address, no other header (a pseudonym the client sent itself
	// included), no auth data.
	kept := map[string][]string{p.cfg.MetadataKey: values}
	if p.cfg.PseudonymKey != "" {
		if pseudonym := p.pseudonym(client.FromContext(ctx).Addr); pseudonym != "" {
			kept[p.cfg.PseudonymKey] = []string{pseudonym}
		}
	}
	narrowed := client.NewContext(ctx, client.Info{Metadata: client.NewMetadata(kept)})
	return p.next.ConsumeMetrics(narrowed, md)
}
