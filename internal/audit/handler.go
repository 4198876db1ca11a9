package audit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/claude-bottle/claude-bottle/internal/safetext"
)

// Handler wraps h, a sidecar's own diagnostic log (stderr, read with
// docker logs), so that it keeps the decision log's promises too: every
// message and attribute passes this Log's redactor (as set at the time of
// each record) and is shown with hidden characters escaped. A nil Log
// escapes only.
func (l *Log) Handler(h slog.Handler) slog.Handler {
	return &redactHandler{h: h, l: l}
}

type redactHandler struct {
	h slog.Handler
	l *Log
}

func (r *redactHandler) redactor() *Redactor {
	if r.l == nil {
		return nil
	}
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return r.l.redact
}

func (r *redactHandler) Enabled(ctx context.Context, lv slog.Level) bool { return r.h.Enabled(ctx, lv) }

func (r *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	red := r.redactor()
	out := slog.NewRecord(rec.Time, rec.Level, clean(red, rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cleanAttr(red, a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := r.redactor()
	cleaned := make([]slog.Attr, len(as))
	for i, a := range as {
		cleaned[i] = cleanAttr(red, a)
	}
	return &redactHandler{h: r.h.WithAttrs(cleaned), l: r.l}
}

func (r *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{h: r.h.WithGroup(name), l: r.l}
}

func clean(red *Redactor, s string) string { return safetext.Text(red.Redact(s)) }

// cleanAttr redacts a string attribute, and any other value that prints as
// text (an error, a Stringer, ...) once printed; numbers, times and
// durations cannot hold a credential and are kept as they are.
func cleanAttr(red *Redactor, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, clean(red, v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = cleanAttr(red, x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		return slog.String(a.Key, clean(red, fmt.Sprint(v.Any())))
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
