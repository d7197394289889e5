package credentials

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

const secret = "s3cr3t-Pa55word"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// env returns a Getenv that sees only vars (HOME points nowhere).
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// decoded returns the auth config a header carries.
func decoded(t *testing.T, a Auth) map[string]string {
	t.Helper()
	h, err := a.Header()
	require.NoError(t, err)
	cfg, err := authconfig.Decode(h)
	require.NoError(t, err)
	return map[string]string{"username": cfg.Username, "password": cfg.Password, "server": cfg.ServerAddress, "identitytoken": cfg.IdentityToken, "registrytoken": cfg.RegistryToken}
}

func TestRegistryOf(t *testing.T) {
	tests := map[string]string{
		"busybox":                  DockerHub,
		"busybox:1.36":             DockerHub,
		"ubuntu:22.04":             DockerHub,
		"user/repo":                DockerHub,
		"docker.io/library/alpine": DockerHub,
		"index.docker.io/user/r":   DockerHub,
		"host:5000/repo:tag":       "host:5000",
		"host.example.com/a/b":     "host.example.com",
		"localhost/repo":           "localhost",
		"127.0.0.1:5000/x":         "127.0.0.1:5000",
		"ghcr.io/org/img@sha256:" + strings.Repeat("a", 64): "ghcr.io",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := RegistryOf(in)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
	_, err := RegistryOf("Not A Reference")
	require.ErrorIs(t, err, runner.ErrInvalidTask)
}

func TestNormalizeRegistry(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": DockerHub, "index.docker.io": DockerHub, "registry-1.docker.io": DockerHub, "docker.io": DockerHub,
		"HOST:5000/": "host:5000", "http://127.0.0.1:5000": "127.0.0.1:5000", "ghcr.io/v2/": "ghcr.io",
	} {
		assert.Equal(t, want, NormalizeRegistry(in), in)
	}
}

func TestExplicitCredentials(t *testing.T) {
	cfg := &Config{Auths: map[string]AuthEntry{"ghcr.io": {Auth: b64("fromconfig:other")}}}
	tests := []struct {
		name   string
		creds  Credentials
		image  string
		user   string
		pass   string
		source string
	}{
		{"username and password win over config", Credentials{Registry: "ghcr.io", Username: "u", Password: secret}, "ghcr.io/o/i", "u", secret, "credentials"},
		{"no registry means any", Credentials{Username: "u", Password: secret}, "ghcr.io/o/i", "u", secret, "credentials"},
		{"auth field decoded", Credentials{Auth: b64("u2:" + secret)}, "ghcr.io/o/i", "u2", secret, "credentials"},
		{"another registry's credentials are not sent", Credentials{Registry: "quay.io", Username: "u", Password: secret}, "ghcr.io/o/i", "fromconfig", "other", "the runner's docker config"},
		{"hub aliases", Credentials{Registry: "https://index.docker.io/v1/", Username: "hub", Password: secret}, "busybox", "hub", secret, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Resolver{Explicit: &tt.creds, Config: cfg, Getenv: env(nil)}.Resolve(t.Context(), tt.image)
			require.NoError(t, err)
			got := decoded(t, a)
			assert.Equal(t, tt.user, got["username"])
			assert.Equal(t, tt.pass, got["password"])
			assert.Equal(t, tt.source, a.Source())
		})
	}
	t.Run("identity and registry tokens", func(t *testing.T) {
		a, err := Resolver{Explicit: &Credentials{IdentityToken: "idt"}, Getenv: env(nil)}.Resolve(t.Context(), "ghcr.io/x")
		require.NoError(t, err)
		assert.Equal(t, "idt", decoded(t, a)["identitytoken"])
		a, err = Resolver{Explicit: &Credentials{RegistryToken: "rt"}, Getenv: env(nil)}.Resolve(t.Context(), "busybox")
		require.NoError(t, err)
		assert.Equal(t, "rt", decoded(t, a)["registrytoken"])
		assert.Equal(t, "https://index.docker.io/v1/", decoded(t, a)["server"])
	})
}

func TestExactHostMatching(t *testing.T) {
	cfg := &Config{Auths: map[string]AuthEntry{
		"evil.azurecr.io": {Auth: b64("victim:" + secret)},
		"host:5000":       {Auth: b64("five:" + secret)},
	}}
	for _, image := range []string{"evil.azurecr.io.attacker.com/x", "host:5001/x", "host/x", "azurecr.io/x", "attacker.com/evil.azurecr.io/x"} {
		t.Run(image, func(t *testing.T) {
			a, err := Resolver{Config: cfg, Explicit: &Credentials{Registry: "host:5000", Username: "u", Password: secret}, Getenv: env(nil)}.Resolve(t.Context(), image)
			require.NoError(t, err)
			assert.True(t, a.IsZero(), "no credentials for %s, got %v", image, a)
			h, _ := a.Header()
			assert.Empty(t, h)
		})
	}
}

func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"file.example":{"auth":"`+b64("fileuser:"+secret)+`"}}}`), 0o600))
	inline := `{"auths":{"inline.example":{"username":"inl","password":"` + secret + `"}}}`
	r := Resolver{Getenv: env(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_AUTH_CONFIG": inline})}

	a, err := r.Resolve(t.Context(), "file.example/x")
	require.NoError(t, err)
	assert.Equal(t, "fileuser", a.Username())
	assert.Equal(t, filepath.Join(dir, "config.json"), a.Source())

	a, err = r.Resolve(t.Context(), "inline.example/x")
	require.NoError(t, err)
	assert.Equal(t, "inl", a.Username())
	assert.Equal(t, "DOCKER_AUTH_CONFIG", a.Source())

	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"`+b64("hubuser:"+secret)+`"}}}`), 0o600))
	a, err = Resolver{Getenv: env(map[string]string{"HOME": home})}.Resolve(t.Context(), "library/busybox:1.36")
	require.NoError(t, err)
	assert.Equal(t, "hubuser", a.Username())

	loaded, err := LoadConfig(inline)
	require.NoError(t, err)
	assert.Equal(t, "inl", loaded.Auths["inline.example"].Username)
	loaded, err = LoadConfig(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	assert.Contains(t, loaded.Auths, "file.example")
}

func TestBadConfigsNeverQuoteSecrets(t *testing.T) {
	for name, data := range map[string]string{
		"bad auth base64":    `{"auths":{"r.io":{"auth":"` + secret + `!!"}}}`,
		"auth without colon": `{"auths":{"r.io":{"auth":"` + b64(secret) + `"}}}`,
		"not JSON":           `{"auths": ` + secret,
		"helper path":        `{"credHelpers":{"r.io":"../../bin/sh"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(data), "test config")
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
			assert.Contains(t, err.Error(), "test config")
		})
	}
	err := Credentials{Auth: "%%%" + secret}.Validate()
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "credentials.auth", fe.Field)
	assert.NotContains(t, err.Error(), secret)
}

func TestNothingPrintsSecrets(t *testing.T) {
	c := Credentials{Registry: "r.io", Username: "u", Password: secret, Auth: b64("u:" + secret), IdentityToken: secret + "-id", RegistryToken: secret + "-rt"}
	a, err := Resolver{Explicit: &c, Getenv: env(nil)}.Resolve(context.Background(), "r.io/x")
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("pull", "creds", c, "auth", a)
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s", c, c, c, c),
		fmt.Sprintf("%v %+v %#v %s", a, a, a, a),
		fmt.Sprintf("%v", []any{c, &c, a, &a}),
		fmt.Sprintf("%+v", AuthEntry{Password: secret}),
		logged.String(),
	} {
		assert.NotContains(t, out, secret)
		assert.NotContains(t, out, b64("u:"+secret))
	}
	assert.Contains(t, logged.String(), "r.io")
}

// buildHelper builds the test credential helper as docker-credential-<name>
// in a fresh directory, with its fixture, and returns the directory and the
// log of what it was asked.
func buildHelper(t *testing.T, name string, fixture map[string]any) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "docker-credential-"+name), "./testdata/helper").CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err := json.Marshal(fixture)
	require.NoError(t, err)
	fix := filepath.Join(dir, "fixture.json")
	require.NoError(t, os.WriteFile(fix, data, 0o600))
	log = filepath.Join(dir, "asked.log")
	t.Setenv("LADING_HELPER_FIXTURE", fix)
	t.Setenv("LADING_HELPER_LOG", log)
	return dir, log
}

func TestCredentialHelpers(t *testing.T) {
	dir, log := buildHelper(t, "ladingtest", map[string]any{
		"helper.example":              map[string]string{"ServerURL": "helper.example", "Username": "hu", "Secret": secret},
		"token.example":               map[string]string{"ServerURL": "token.example", "Username": "<token>", "Secret": "idtoken-" + secret},
		"https://index.docker.io/v1/": map[string]string{"Username": "hub", "Secret": secret},
		"fail.example":                "fail",
	})
	cfg := &Config{
		CredHelpers: map[string]string{"helper.example": "ladingtest", "token.example": "ladingtest", "fail.example": "ladingtest", "missing.example": "ladingtest", "docker.io": "ladingtest", "nohelper.example": "absent"},
		Auths:       map[string]AuthEntry{"missing.example": {Auth: b64("fallback:" + secret)}},
	}
	r := Resolver{Config: cfg, HelperDir: dir, Getenv: env(nil)}

	a, err := r.Resolve(t.Context(), "helper.example/x")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"username": "hu", "password": secret, "server": "helper.example", "identitytoken": "", "registrytoken": ""}, decoded(t, a))
	assert.Equal(t, "credential helper ladingtest", a.Source())

	a, err = r.Resolve(t.Context(), "token.example/x")
	require.NoError(t, err)
	assert.Equal(t, "idtoken-"+secret, decoded(t, a)["identitytoken"], "<token> means an identity token")
	assert.Empty(t, decoded(t, a)["username"])

	a, err = r.Resolve(t.Context(), "busybox")
	require.NoError(t, err)
	assert.Equal(t, "hub", a.Username())

	a, err = r.Resolve(t.Context(), "missing.example/x")
	require.NoError(t, err)
	assert.Equal(t, "fallback", a.Username(), "a helper without credentials falls back to auths")

	_, err = r.Resolve(t.Context(), "fail.example/x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2-helper-secret", "a helper's output is never echoed")
	assert.Contains(t, err.Error(), "docker-credential-ladingtest")

	_, err = r.Resolve(t.Context(), "nohelper.example/x")
	require.ErrorContains(t, err, "docker-credential-absent")

	asked, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "helper.example\ntoken.example\nhttps://index.docker.io/v1/\nmissing.example\nfail.example\n", string(asked), "the helper got each server address on stdin")

	t.Run("credsStore for every registry", func(t *testing.T) {
		a, err := Resolver{Config: &Config{CredsStore: "ladingtest"}, HelperDir: dir, Getenv: env(nil)}.Resolve(t.Context(), "helper.example/y")
		require.NoError(t, err)
		assert.Equal(t, "hu", a.Username())
	})
}

func FuzzRegistryOf(f *testing.F) {
	for _, s := range []string{"busybox", "host:5000/a/b:c", "a@sha256:" + strings.Repeat("0", 64), "UPPER/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		reg, err := RegistryOf(s)
		if err == nil && reg == "" {
			t.Fatalf("%q: empty registry", s)
		}
	})
}

// scriptHelper writes docker-credential-<name> as a shell script into a
// fresh directory and returns the directory.
func scriptHelper(t *testing.T, name, script string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte("#!/bin/sh\n"+script), 0o700))
	return dir
}

func TestHostileCredentialHelpers(t *testing.T) {
	cfg := &Config{CredHelpers: map[string]string{"flood.example": "flood", "orphan.example": "orphan"}}
	t.Run("a helper that floods its output is stopped", func(t *testing.T) {
		// Without the cap this reads 4 GiB into memory (or runs out of it).
		dir := scriptHelper(t, "flood", "exec yes "+secret+" | head -c 4294967296\n")
		_, err := Resolver{Config: cfg, HelperDir: dir, Getenv: env(nil)}.Resolve(t.Context(), "flood.example/x")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "printed more than 64 KiB")
		assert.NotContains(t, err.Error(), secret)
	})
	t.Run("a process the helper leaves holding its stdout does not hold the caller", func(t *testing.T) {
		dir := scriptHelper(t, "orphan", `done="$(dirname "$0")/orphan-done"
(sleep 20; touch "$done") &
printf '{"Username":"ou","Secret":"`+secret+`"}'
`)
		a, err := Resolver{Config: cfg, HelperDir: dir, Getenv: env(nil)}.Resolve(t.Context(), "orphan.example/x")
		require.NoError(t, err)
		assert.Equal(t, "ou", a.Username())
		assert.NoFileExists(t, filepath.Join(dir, "orphan-done"), "Resolve waited for the helper's orphan to finish")
	})
}
