#!/usr/bin/env python3
"""Kill sessions and call privileged routes of the session service from a Python service.

Standard library only (urllib, json, base64), so it runs anywhere Python 3.8+ does. On Google
Cloud (Cloud Run, Cloud Functions, App Engine, GCE) the tokens come from the metadata server of the
service account the code runs as; that account needs roles/pubsub.publisher on the kill topic to
publish, and must be listed in SESSION_ADMIN_PRINCIPALS to call privileged routes.

    # publish a kill message to the kill topic (Pub/Sub REST API, or the emulator)
    python3 session_admin.py publish-kill --project my-project --user alice
    PUBSUB_EMULATOR_HOST=127.0.0.1:8085 python3 session_admin.py publish-kill --project p --user alice

    # call POST /sessions/kill on the API with an ID token for its audience
    python3 session_admin.py api-kill --api https://sessions.example.com --user alice
    python3 session_admin.py api-kill --api http://localhost:8080 --id-token "$(npm run -s mint-token)" --user alice

Each prints the message id; errors go to stderr with exit code 1. The same functions can be
imported: publish_kill(), call_privileged(), metadata_id_token(), metadata_access_token().
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

METADATA = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default"
TIMEOUT_SECONDS = 30


class ServiceError(Exception):
    """A call that did not succeed; the message says which and why (the service's error body)."""


def _request(url, body=None, headers=None, method=None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as res:
            text = res.read().decode("utf-8")
            return res.status, text
    except urllib.error.HTTPError as err:
        text = err.read().decode("utf-8", "replace")
        try:
            error = json.loads(text)["error"]
            detail = "%s: %s" % (error.get("code") or error.get("status"), error.get("message"))
        except (ValueError, KeyError, TypeError, AttributeError):
            detail = text[:200]
        raise ServiceError("%s %s answered %d (%s)" % (req.get_method(), url, err.code, detail)) from None
    except urllib.error.URLError as err:
        raise ServiceError("%s %s failed: %s" % (req.get_method(), url, err.reason)) from None


def metadata_access_token():
    """An OAuth access token of the service account this code runs as (Google Cloud only)."""
    _, text = _request(METADATA + "/token", headers={"Metadata-Flavor": "Google"})
    return json.loads(text)["access_token"]


def metadata_id_token(audience):
    """A Google-signed ID token for `audience` (the API's URL, its SESSION_ADMIN_AUDIENCE)."""
    query = urllib.parse.urlencode({"audience": audience, "format": "full"})
    _, text = _request(METADATA + "/identity?" + query, headers={"Metadata-Flavor": "Google"})
    return text.strip()


def kill_message(user=None, users=None, issued_at=None):
    """The kill message data: {"user": id | "__guest__" | None} or {"users": [...]}, optional issuedAt (ISO 8601)."""
    message = {"users": list(users)} if users is not None else {"user": user}
    if issued_at is not None:
        message["issuedAt"] = issued_at
    return message


def publish_kill(project, message, topic="session-kill", emulator_host=None, access_token=None):
    """Publishes one kill message; returns its message id. Honours PUBSUB_EMULATOR_HOST like the Google clients."""
    emulator_host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    base = "http://%s" % emulator_host if emulator_host else "https://pubsub.googleapis.com"
    headers = {}
    if not emulator_host:
        headers["Authorization"] = "Bearer " + (access_token or metadata_access_token())
    data = base64.b64encode(json.dumps(message).encode("utf-8")).decode("ascii")
    url = "%s/v1/projects/%s/topics/%s:publish" % (base, urllib.parse.quote(project), urllib.parse.quote(topic))
    _, text = _request(url, {"messages": [{"data": data}]}, headers)
    return json.loads(text)["messageIds"][0]


def call_privileged(api, path, body, id_token=None):
    """POSTs `body` to a privileged route (e.g. /sessions/kill, /session/login) with an ID token; returns the parsed answer."""
    token = id_token or metadata_id_token(api)
    _, text = _request(api.rstrip("/") + path, body, {"Authorization": "Bearer " + token})
    return json.loads(text) if text.strip() else None


def main(argv=None):
    parser = argparse.ArgumentParser(description="Kill sessions of the session service.")
    sub = parser.add_subparsers(dest="command", required=True)
    publish = sub.add_parser("publish-kill", help="publish a kill message to the kill topic")
    publish.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT"))
    publish.add_argument("--topic", default=os.environ.get("SESSION_KILL_TOPIC", "session-kill"))
    api = sub.add_parser("api-kill", help="POST /sessions/kill with an ID token")
    api.add_argument("--api", required=True, help="the API's URL, also the token audience")
    api.add_argument("--id-token", default=os.environ.get("SESSION_ID_TOKEN"), help="default: from the metadata server")
    for p in (publish, api):
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--user")
        target.add_argument("--guests", action="store_true")
        target.add_argument("--all", action="store_true")
        target.add_argument("--users", help="comma-separated")
        p.add_argument("--issued-at", help="ISO 8601; only sessions created at or before it")
    args = parser.parse_args(argv)

    if args.users is not None:
        message = kill_message(users=[u.strip() for u in args.users.split(",") if u.strip()], issued_at=args.issued_at)
    else:
        message = kill_message(user="__guest__" if args.guests else None if args.all else args.user, issued_at=args.issued_at)
    try:
        if args.command == "publish-kill":
            if not args.project:
                parser.error("no project: give --project or set GOOGLE_CLOUD_PROJECT")
            print(publish_kill(args.project, message, args.topic))
        else:
            print(call_privileged(args.api, "/sessions/kill", message, args.id_token)["messageId"])
    except ServiceError as err:
        print("session_admin: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
