"""LangChain's SessionsPythonREPLTool, call by call: requests with fresh headers per call
(Authorization, User-Agent; Content-Type only on execute), uploads as `files=` plus `data={}`,
identifier percent-encoded, download path percent-encoded, and close() deleting the session with
api-version 2025-10-02-preview. Mirrors langchain_azure_dynamic_sessions/tools/sessions.py."""
import io, json, sys, urllib.parse

import requests

EP, TOKEN, SID = sys.argv[1:4]
UA = "langchain-azure-dynamic-sessions/1.0 (Language=Python)"
AUTH = {"Authorization": f"Bearer {TOKEN}", "User-Agent": UA}


def url(path, version="2024-02-02-preview"):
    base = EP if EP.endswith("/") else EP + "/"
    return f"{base}{path}?identifier={urllib.parse.quote(SID)}&api-version={version}"


out = {}
body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "state = 41\nstate"}}
r = requests.post(url("code/execute"), headers={**AUTH, "Content-Type": "application/json"}, json=body)
r.raise_for_status()
out["first"] = r.json().get("properties", {})
files = [("file", ("report v1.txt", io.BytesIO(b"hello from langchain"), "application/octet-stream"))]
r = requests.request("POST", url("files/upload"), headers=AUTH, data={}, files=files)
out["uploadStatus"] = r.status_code
r.raise_for_status()
out["upload"] = r.json()["value"][0]["properties"]
r = requests.get(url("files"), headers=AUTH)
out["list"] = [[e["properties"]["filename"], e["properties"]["size"]] for e in r.json()["value"]]
r = requests.get(url("files/content/" + urllib.parse.quote("report v1.txt")), headers=AUTH)
out["download"] = r.text
body["properties"]["code"] = "state + 1"
out["second"] = requests.post(url("code/execute"), headers={**AUTH, "Content-Type": "application/json"}, json=body).json()["properties"]
r = requests.delete(url("session", "2025-10-02-preview"), headers=AUTH)
out["deleteStatus"] = r.status_code
print(json.dumps(out))
