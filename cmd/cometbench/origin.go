package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// runOrigin serves the GRIP origin that Pushpin proxies subscribers to
// (pushpin.org "GRIP"): every GET /sub/{channel} is answered at once with
// Grip-Hold: stream and Grip-Channel: {channel}, so Pushpin holds the
// client's response open and appends what is published to that channel.
// ?format=sse answers text/event-stream, anything else NDJSON-style lines.
func runOrigin(args []string) int {
	fs := flag.NewFlagSet("cometbench origin", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:19001", "address to serve on (loopback)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           originHandler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Fprintf(os.Stderr, "cometbench origin: serving GRIP holds on %s\n", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "cometbench origin:", err)
		return 1
	}
	return 0
}

func originHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sub/{channel...}", func(w http.ResponseWriter, r *http.Request) {
		channel := r.PathValue("channel")
		if channel == "" || strings.ContainsAny(channel, ",; \t") {
			http.Error(w, "bad channel", http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Grip-Hold", "stream")
		h.Set("Grip-Channel", channel)
		h.Set("Cache-Control", "no-cache")
		if r.URL.Query().Get("format") == transportSSE || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			h.Set("Content-Type", "text/event-stream")
			// The initial body reaches the client at once, like
			// cometbox's ": ok" comment.
			_, _ = w.Write([]byte(": ok\n\n"))
			return
		}
		h.Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte("\n"))
	})
	return mux
}
