"""A tiny Flask service with a health check, pinned the way the team pinned it: flask==2.2.2.

Flask 2.2.2 declares `Werkzeug>=2.2.2` with no upper bound. Werkzeug 3.0 (2023-09-30)
removed `werkzeug.urls.url_quote`, which Flask 2.2.2 imports (flask/app.py), so a fresh install of the
same pin stopped working on the day Werkzeug 3.0 was published.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/health")
def health():
    return jsonify(status="ok")


if __name__ == "__main__":
    with app.test_client() as client:
        response = client.get("/health")
        print(response.status_code, response.get_json())
