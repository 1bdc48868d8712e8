package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Authorizer asks the legacy app whether a subscriber may hold a channel:
// a GET to its URL carrying the subscriber's cookies and Authorization and
// the channel, so the app decides with its own sessions. 2xx allows; any
// other status is passed back to the subscriber. Answers are cached per
// session and channel, so long-poll reconnects do not flood the app.
type Authorizer struct {
	URL      string
	Client   *http.Client
	CacheTTL time.Duration
	// MaxEntries bounds the cache; the oldest answers go first.
	MaxEntries int
	Now        func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]answer
	order []cacheKey
}

type cacheKey struct {
	session [32]byte
	channel string
}

// answer is what the app said: allowed until expires (zero: no end), or
// refused with a status.
type answer struct {
	status   int
	expires  time.Time
	cachedAt time.Time
}

// Ask returns when the app's permission ends (zero for no end), or an
// *Denied with the app's status.
func (a *Authorizer) Ask(ctx context.Context, r *http.Request, channel string) (time.Time, error) {
	key := cacheKey{session: sessionOf(r), channel: channel}
	now := a.Now()
	if ans, ok := a.cached(key, now); ok {
		return ans.result(channel)
	}
	ans, err := a.ask(ctx, r, channel, now)
	if err != nil {
		return time.Time{}, err // not cached: the app was not heard
	}
	a.remember(key, ans)
	return ans.result(channel)
}

func (ans answer) result(channel string) (time.Time, error) {
	if ans.status >= 200 && ans.status < 300 {
		return ans.expires, nil
	}
	return time.Time{}, &Denied{Status: ans.status, Reason: fmt.Sprintf("the application refused channel %q (%d)", channel, ans.status)}
}

// RequestHeaders are the headers of a subscribe request that
// authorization reads (the token's Authorization and cookie) or passes to
// the app as the subscriber's identity: all it needs of a request besides
// its URL.
var RequestHeaders = []string{"Cookie", "Authorization", "User-Agent", "Accept-Language", "X-Forwarded-For"}

func (a *Authorizer) ask(ctx context.Context, r *http.Request, channel string, now time.Time) (answer, error) {
	u, err := url.Parse(a.URL)
	if err != nil {
		return answer{}, err
	}
	q := u.Query()
	q.Set("channel", channel)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return answer{}, err
	}
	for _, name := range RequestHeaders {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Header[name] = v
		}
	}
	req.Header.Set("Comet-Channel", channel)
	resp, err := a.Client.Do(req)
	if err != nil {
		return answer{}, &Denied{Status: http.StatusBadGateway, Reason: "the application's authorization endpoint did not answer"}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	resp.Body.Close()
	ans := answer{status: resp.StatusCode, cachedAt: now}
	if ans.status >= 300 && ans.status < 400 {
		// A redirect is most likely a login page: the app did not say yes.
		ans.status = http.StatusForbidden
	}
	// The app may bound its permission; the subscription ends then.
	if v := resp.Header.Get("Comet-Expires"); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			ans.expires = time.Unix(secs, 0)
		}
	}
	return ans, nil
}

func (a *Authorizer) cached(key cacheKey, now time.Time) (answer, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ans, ok := a.cache[key]
	if !ok || now.Sub(ans.cachedAt) >= a.CacheTTL || (!ans.expires.IsZero() && !now.Before(ans.expires)) {
		return answer{}, false
	}
	return ans, true
}

func (a *Authorizer) remember(key cacheKey, ans answer) {
	if a.CacheTTL <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil {
		a.cache = make(map[cacheKey]answer)
	}
	if _, ok := a.cache[key]; !ok {
		a.order = append(a.order, key)
	}
	a.cache[key] = ans
	for len(a.order) > a.MaxEntries {
		delete(a.cache, a.order[0])
		a.order = a.order[1:]
	}
}

// sessionOf identifies a subscriber's session by what the app sees of it,
// hashed so that the cache holds no credentials.
func sessionOf(r *http.Request) [32]byte {
	h := sha256.New()
	for _, name := range []string{"Cookie", "Authorization"} {
		for _, v := range r.Header.Values(name) {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
