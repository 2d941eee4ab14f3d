// Command sessionadmin kills sessions of the session service from a Go backend: it publishes a
// kill message to the kill topic (Pub/Sub REST API, or its emulator), or calls the privileged
// route POST /sessions/kill with an ID token. Standard library only, like the Python example next
// door (examples/python/session_admin.py); test/examples/go.test.ts builds and runs it in npm test.
//
// On Google Cloud (Cloud Run, Cloud Functions, GCE) the tokens come from the metadata server of the
// service account the code runs as; that account needs roles/pubsub.publisher on the kill topic to
// publish, and must be listed in SESSION_ADMIN_PRINCIPALS to call privileged routes.
//
//	go run . publish-kill --project my-project --user alice
//	PUBSUB_EMULATOR_HOST=127.0.0.1:8085 go run . publish-kill --project session-local --user alice
//	go run . api-kill --api https://sessions.example.com --user alice
//	SESSION_ID_TOKEN="$(npm run -s mint-token)" go run . api-kill --api http://localhost:8080 --user alice
//
// Each prints the message id; errors go to stderr with exit code 1 (2 for a wrong command line).
// The functions (PublishKill, CallPrivileged, KillMessage…) can be copied into a service as they are.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const metadataBase = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default"

var client = &http.Client{Timeout: 30 * time.Second}

// ServiceError is a call that did not succeed: which one, and why (the service's error body).
type ServiceError struct{ Message string }

func (e *ServiceError) Error() string { return e.Message }

// do sends one request and returns the body of a 2xx answer, or a ServiceError.
func do(ctx context.Context, method, target string, body any, headers map[string]string) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, &ServiceError{fmt.Sprintf("%s %s failed: %v", method, target, err)}
	}
	defer res.Body.Close()
	text, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, &ServiceError{fmt.Sprintf("%s %s: reading the answer: %v", method, target, err)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var answer struct {
			Error struct {
				Code    any    `json:"code"`
				Status  string `json:"status"`
				Message string `json:"message"`
			} `json:"error"`
		}
		detail := strings.TrimSpace(string(text))
		if len(detail) > 200 {
			detail = detail[:200]
		}
		if json.Unmarshal(text, &answer) == nil && answer.Error.Message != "" {
			code := answer.Error.Code
			if code == nil || code == "" {
				code = answer.Error.Status
			}
			detail = fmt.Sprintf("%v: %s", code, answer.Error.Message)
		}
		return nil, &ServiceError{fmt.Sprintf("%s %s answered %d (%s)", method, target, res.StatusCode, detail)}
	}
	return text, nil
}

// MetadataAccessToken is an OAuth access token of the service account this code runs as (Google Cloud only).
func MetadataAccessToken(ctx context.Context) (string, error) {
	text, err := do(ctx, http.MethodGet, metadataBase+"/token", nil, map[string]string{"Metadata-Flavor": "Google"})
	if err != nil {
		return "", err
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(text, &token); err != nil {
		return "", err
	}
	return token.AccessToken, nil
}

// MetadataIDToken is a Google-signed ID token for audience (the API's URL, its SESSION_ADMIN_AUDIENCE).
func MetadataIDToken(ctx context.Context, audience string) (string, error) {
	query := url.Values{"audience": {audience}, "format": {"full"}}.Encode()
	text, err := do(ctx, http.MethodGet, metadataBase+"/identity?"+query, nil, map[string]string{"Metadata-Flavor": "Google"})
	return strings.TrimSpace(string(text)), err
}

// KillMessage is the kill message data: {"user": id | "__guest__" | null} or {"users": [...]},
// with issuedAt (ISO 8601) when given: only sessions created at or before it are killed.
func KillMessage(user *string, users []string, issuedAt string) map[string]any {
	message := map[string]any{}
	if users != nil {
		message["users"] = users
	} else if user != nil {
		message["user"] = *user
	} else {
		message["user"] = nil // every session
	}
	if issuedAt != "" {
		message["issuedAt"] = issuedAt
	}
	return message
}

// PublishKill publishes one kill message to projects/PROJECT/topics/TOPIC and returns its message id.
// With emulatorHost (PUBSUB_EMULATOR_HOST) it talks to the emulator without a token, as the Google clients do.
func PublishKill(ctx context.Context, project, topic string, message map[string]any, emulatorHost, accessToken string) (string, error) {
	data, err := json.Marshal(message)
	if err != nil {
		return "", err
	}
	base := "https://pubsub.googleapis.com"
	headers := map[string]string{}
	if emulatorHost != "" {
		base = "http://" + emulatorHost
	} else {
		if accessToken == "" {
			if accessToken, err = MetadataAccessToken(ctx); err != nil {
				return "", err
			}
		}
		headers["Authorization"] = "Bearer " + accessToken
	}
	target := fmt.Sprintf("%s/v1/projects/%s/topics/%s:publish", base, url.PathEscape(project), url.PathEscape(topic))
	body := map[string]any{"messages": []map[string]string{{"data": base64.StdEncoding.EncodeToString(data)}}}
	text, err := do(ctx, http.MethodPost, target, body, headers)
	if err != nil {
		return "", err
	}
	var answer struct {
		MessageIDs []string `json:"messageIds"`
	}
	if err := json.Unmarshal(text, &answer); err != nil || len(answer.MessageIDs) != 1 {
		return "", &ServiceError{fmt.Sprintf("POST %s: unexpected answer %q", target, text)}
	}
	return answer.MessageIDs[0], nil
}

// CallPrivileged POSTs body to a privileged route (/sessions/kill, /session/login…) with an ID token
// (from the metadata server when idToken is empty) and decodes the JSON answer into out.
func CallPrivileged(ctx context.Context, api, path string, body any, idToken string, out any) error {
	api = strings.TrimRight(api, "/")
	if idToken == "" {
		var err error
		if idToken, err = MetadataIDToken(ctx, api); err != nil {
			return err
		}
	}
	text, err := do(ctx, http.MethodPost, api+path, body, map[string]string{"Authorization": "Bearer " + idToken})
	if err != nil {
		return err
	}
	return json.Unmarshal(text, out)
}

type target struct {
	user, users, issuedAt *string
	guests, all           *bool
}

func targetFlags(fs *flag.FlagSet) target {
	return target{
		user:     fs.String("user", "", "kill every session of this user"),
		users:    fs.String("users", "", "comma-separated user ids"),
		guests:   fs.Bool("guests", false, "kill every guest session"),
		all:      fs.Bool("all", false, "kill every session"),
		issuedAt: fs.String("issued-at", "", "ISO 8601; only sessions created at or before it"),
	}
}

func (t target) message(fs *flag.FlagSet) (map[string]any, error) {
	chosen := 0
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "user", "users", "guests", "all":
			chosen++
		}
	})
	if chosen != 1 {
		return nil, errors.New("give exactly one of --user, --users, --guests, --all")
	}
	switch {
	case *t.guests:
		guest := "__guest__"
		return KillMessage(&guest, nil, *t.issuedAt), nil
	case *t.all:
		return KillMessage(nil, nil, *t.issuedAt), nil
	case *t.users != "":
		users := []string{}
		for _, u := range strings.Split(*t.users, ",") {
			if u = strings.TrimSpace(u); u != "" {
				users = append(users, u)
			}
		}
		return KillMessage(nil, users, *t.issuedAt), nil
	default:
		return KillMessage(t.user, nil, *t.issuedAt), nil
	}
}

const usage = `usage: sessionadmin publish-kill [--project P] [--topic T] (--user U | --users A,B | --guests | --all) [--issued-at T]
       sessionadmin api-kill --api URL [--id-token T] (--user U | --users A,B | --guests | --all) [--issued-at T]
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "publish-kill" && args[0] != "api-kill") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	project := fs.String("project", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project of the kill topic")
	topic := fs.String("topic", envOr("SESSION_KILL_TOPIC", "session-kill"), "kill topic")
	api := fs.String("api", "", "the API's URL, also the token audience")
	idToken := fs.String("id-token", os.Getenv("SESSION_ID_TOKEN"), "default: from the metadata server")
	t := targetFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	message, err := t.message(fs)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && args[0] == "publish-kill" && *project == "" {
		err = errors.New("no project: give --project or set GOOGLE_CLOUD_PROJECT")
	}
	if err == nil && args[0] == "api-kill" && *api == "" {
		err = errors.New("api-kill needs --api URL")
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionadmin: %v\n%s", err, usage)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var id string
	if args[0] == "publish-kill" {
		id, err = PublishKill(ctx, *project, *topic, message, os.Getenv("PUBSUB_EMULATOR_HOST"), "")
	} else {
		var answer struct {
			MessageID string `json:"messageId"`
		}
		err = CallPrivileged(ctx, *api, "/sessions/kill", message, *idToken, &answer)
		id = answer.MessageID
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionadmin: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, id)
	return 0
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
