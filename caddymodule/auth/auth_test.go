package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

var testKey = []byte("k3y")

func mint(alg string, key []byte, claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	s := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return s + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestParseTokenPinsTheAlgorithmAndChecksTime(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	exp := now.Unix() + 60
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", mint("HS256", testKey, map[string]any{"channels": []string{"user.*"}, "exp": exp}), nil},
		{"none", mint("none", testKey, map[string]any{"channels": []string{"*"}, "exp": exp}), ErrTokenAlgorithm},
		{"HS512 name", mint("HS512", testKey, map[string]any{"channels": []string{"*"}, "exp": exp}), ErrTokenAlgorithm},
		{"wrong key", mint("HS256", []byte("other"), map[string]any{"channels": []string{"*"}, "exp": exp}), ErrTokenSignature},
		{"expired", mint("HS256", testKey, map[string]any{"channels": []string{"*"}, "exp": now.Unix() - 31}), ErrTokenExpired},
		{"expired within the leeway", mint("HS256", testKey, map[string]any{"channels": []string{"*"}, "exp": now.Unix() - 29}), nil},
		{"not yet", mint("HS256", testKey, map[string]any{"channels": []string{"*"}, "exp": exp, "nbf": now.Unix() + 31}), ErrTokenNotYet},
		{"no exp", mint("HS256", testKey, map[string]any{"channels": []string{"*"}}), ErrTokenClaims},
		{"no channels", mint("HS256", testKey, map[string]any{"exp": exp}), ErrTokenClaims},
		{"two parts", "a.b", ErrTokenMalformed},
		{"four parts", "a.b.c.d", ErrTokenMalformed},
	}
	for _, tc := range cases {
		_, err := ParseToken(tc.token, testKey, now, 30*time.Second)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	claims, _ := ParseToken(cases[0].token, testKey, now, 30*time.Second)
	if !claims.Allows("user.7") || claims.Allows("admin") {
		t.Errorf("claims: %+v", claims)
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(mint("HS256", testKey, map[string]any{"channels": []string{"a"}, "exp": 2_000_000_000}))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := ParseToken(token, testKey, time.Unix(1_700_000_000, 0), 30*time.Second)
		if err != nil {
			return
		}
		// Only a correctly signed token with channels and exp gets here.
		if len(claims.Channels) == 0 || claims.Expires.IsZero() {
			t.Fatalf("accepted %q with claims %+v", token, claims)
		}
	})
}
