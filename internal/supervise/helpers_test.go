package supervise

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/logtest"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// testLogger writes to t.Log until the test ends; server goroutines that
// log later are dropped instead of panicking.
func testLogger(t *testing.T) *slog.Logger { return logtest.New(t) }

// lockedBuffer is a decision log safe to read while a server writes it.
type lockedBuffer = logtest.Buffer

type fixture struct {
	q     *Queue
	cs    *mcp.ClientSession
	audit *lockedBuffer
}

// newFixture serves a Queue in temp dirs over real HTTP and connects a
// go-sdk client to it.
func newFixture(t *testing.T, maxPending int) *fixture {
	t.Helper()
	root := t.TempDir()
	q := &Queue{
		RequestsDir:  filepath.Join(root, "requests"),
		DecisionsDir: filepath.Join(root, "decisions"),
		MaxPending:   maxPending,
	}
	for _, d := range []string{q.RequestsDir, q.DecisionsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	buf := &lockedBuffer{}
	log := testLogger(t)
	srv := httptest.NewServer(Handler(log, NewServer(log, audit.New(buf, "test", "supervise"), q)))
	t.Cleanup(srv.Close)
	return &fixture{q: q, cs: connect(t, srv.URL+"/mcp"), audit: buf}
}

func connect(t *testing.T, endpoint string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and returns the result's text and structured output.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) (*mcp.CallToolResult, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if out != nil && !res.IsError {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("structured output of %s: %v", name, err)
		}
	}
	return res, text.String()
}

// mustFile files a request through the tool and returns its id.
func mustFile(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	var out filedOut
	res, text := call(t, cs, name, args, &out)
	if res.IsError {
		t.Fatalf("%s: %s", name, text)
	}
	if !ValidID(out.ID) || out.Status != "pending" {
		t.Fatalf("%s: filed %+v", name, out)
	}
	return out.ID
}
