"""llama-index's AzureCodeInterpreterToolSpec, call by call: requests with fresh headers, the
token taken from the spec's `access_token_provider` attribute (what sandpool's docs tell users to
set), code with a trailing newline, uploads named `/mnt/data/<basename>` with only Authorization,
download after stripping `/mnt/data/`. Mirrors llama_index/tools/azure_code_interpreter/base.py."""
import json, os, sys, tempfile, urllib.parse

import requests

EP, TOKEN, SID = sys.argv[1:4]
access_token_provider = lambda: TOKEN  # noqa: E731 (the attribute the tool spec calls)


def url(path):
    base = EP if EP.endswith("/") else EP + "/"
    return f"{base}{path}?identifier={urllib.parse.quote(SID)}&api-version=2024-02-02-preview"


def code_interpreter(code):
    headers = {"Authorization": f"Bearer {access_token_provider()}", "Content-Type": "application/json",
               "User-Agent": "llamaindex-azure-code-interpreter/0.0.0 (Language=Python)"}
    body = {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": code + "\n"}}
    r = requests.post(url("code/execute"), headers=headers, json=body)
    r.raise_for_status()
    return r.json()


out = {"first": code_interpreter("state = 41\nstate")["properties"]}
local = os.path.join(tempfile.mkdtemp(), "numbers.txt")
with open(local, "wb") as f:
    f.write(b"1 2 3\n")
files = [("file", (f"/mnt/data/{os.path.basename(local)}", open(local, "rb"), "application/octet-stream"))]
r = requests.request("POST", url("files/upload"), headers={"Authorization": f"Bearer {access_token_provider()}"}, files=files)
out["uploadStatus"] = r.status_code
r.raise_for_status()
out["upload"] = [e["properties"] for e in r.json()["value"] if "properties" in e]
r = requests.get(url("files"), headers={"Authorization": f"Bearer {access_token_provider()}"})
out["list"] = [[e["properties"]["filename"], e["properties"]["size"]] for e in r.json()["value"]]
remote = "/mnt/data/numbers.txt".replace("/mnt/data/", "")
out["download"] = requests.get(url(f"files/content/{remote}"), headers={"Authorization": f"Bearer {access_token_provider()}"}).text
out["second"] = code_interpreter("sum(map(int, open('/mnt/data/numbers.txt').read().split())) + state")["properties"]
print(json.dumps(out))
