"""Tokens from Python, against a server with auth on: whoami, scoped tokens (admin), run tokens a producer mints and revokes."""

from __future__ import annotations

import unittest
import urllib.parse

import runtrail
from tests.support import Server

ADMIN_TOKEN = "py-client-test-admin-token-0123456789"
server = Server(env={"RUNTRAIL_ADMIN_TOKEN": ADMIN_TOKEN})
setUpModule, tearDownModule = server.start, server.close


def client(token: str) -> runtrail.Client:
    return runtrail.Client(server.url, token=token)


class TokensTest(unittest.TestCase):
    def setUp(self) -> None:
        self.admin = client(ADMIN_TOKEN)

    def minted(self, name: str, scope: str) -> runtrail.Client:
        created = self.admin.create_token(name, scope)
        self.addCleanup(self.admin.revoke_token, created["id"])
        return client(created["token"])

    def test_whoami_says_whether_auth_is_on_and_what_the_token_is(self) -> None:
        me = self.admin.whoami()
        self.assertTrue(me["auth"])
        self.assertEqual((me["principal"]["kind"], me["principal"]["scope"]), ("scoped", "admin"))
        # A wrong token is no error here: whoami is how a script asks whether its token works.
        self.assertEqual(client("not-a-token-0123456789").whoami(), {"auth": True, "principal": None})

    def test_an_admin_mints_a_scoped_token_lists_it_without_its_secret_and_a_revoked_one_is_refused(self) -> None:
        created = self.admin.create_token("py-ci", "producer", expires_in_seconds=3600)
        self.assertEqual((created["name"], created["scope"]), ("py-ci", "producer"))
        self.assertIsInstance(created["expiresAt"], int)
        producer = client(created["token"])
        self.assertEqual(producer.whoami()["principal"]["id"], created["id"])
        with producer.run("made with a minted token") as run:
            pass
        (listed,) = [t for t in self.admin.tokens() if t["id"] == created["id"]]
        self.assertNotIn("token", listed)
        self.assertIsNone(listed["revokedAt"])

        first = self.admin.revoke_token(created["id"])
        # Revoking again is the same revoke: what a retry after a lost answer does. It says an earlier one did it, and when.
        again = self.admin.revoke_token(created["id"])
        assert first is not None and again is not None
        self.assertEqual((first["id"], first["alreadyRevoked"]), (created["id"], False))
        self.assertEqual((again["revokedAt"], again["alreadyRevoked"]), (first["revokedAt"], True))
        with self.assertRaises(runtrail.RuntrailError) as refused:
            producer.get_run(run.id)
        self.assertEqual((refused.exception.code, refused.exception.status), ("unauthorized", 401))
        (listed,) = [t for t in self.admin.tokens() if t["id"] == created["id"]]
        self.assertIsNotNone(listed["revokedAt"])

    def test_a_producer_mints_a_run_token_that_reads_that_run_only_until_it_revokes_it(self) -> None:
        producer = self.minted("py-producer", "producer")
        with producer.run("shared") as run:
            run.metric("score", 0.9)
        with producer.run("not shared") as other:
            pass
        shared = producer.create_run_token(run.id, ttl_seconds=600)
        self.assertEqual(set(shared), {"id", "token", "expiresAt", "write", "url"})
        self.assertFalse(shared["write"])
        self.assertEqual(shared["url"], f"{server.url}/runs/{run.id}?token={urllib.parse.quote(shared['token'])}")

        reader = client(shared["token"])
        self.assertEqual(reader.whoami()["principal"], {"kind": "run", "id": shared["id"], "runId": run.id, "expiresAt": shared["expiresAt"], "write": False})
        self.assertEqual(reader.get_run(run.id)["snapshot"]["metrics"]["score"]["last"], 0.9)
        with self.assertRaises(runtrail.RuntrailError) as elsewhere:
            reader.get_run(other.id)
        self.assertEqual(elsewhere.exception.code, "forbidden")

        producer.revoke_token(shared["id"])
        with self.assertRaises(runtrail.RuntrailError) as revoked:
            reader.get_run(run.id)
        self.assertEqual(revoked.exception.code, "unauthorized")

    def test_a_producer_revokes_only_the_run_tokens_it_minted_and_a_viewer_mints_none(self) -> None:
        with self.admin.run("the admin's") as run:
            pass
        admins = self.admin.create_run_token(run.id)
        with self.assertRaises(runtrail.RuntrailError) as not_its_own:
            self.minted("another producer", "producer").revoke_token(admins["id"])
        self.assertEqual(not_its_own.exception.code, "token_not_found")
        self.assertEqual(client(admins["token"]).get_run(run.id)["id"], run.id)
        with self.assertRaises(runtrail.RuntrailError) as viewer:
            self.minted("a viewer", "viewer").create_run_token(run.id)
        self.assertEqual(viewer.exception.code, "forbidden")

    def test_wrong_arguments_are_refused_by_name_before_anything_is_minted(self) -> None:
        with self.admin.run("typed") as run:
            pass
        before = len(self.admin.tokens())
        cases = [
            (lambda: self.admin.create_run_token(run.id, write="false"), r"create_run_token\(write=\.\.\.\) is a bool, got str 'false'"),  # type: ignore[arg-type]
            (lambda: self.admin.create_run_token(run.id, ttl_seconds=True), r"create_run_token\(ttl_seconds=\.\.\.\) is an int, got bool"),
            (lambda: self.admin.create_token("ci", scope=None), r"create_token\(scope=\.\.\.\) is a str, got NoneType"),  # type: ignore[arg-type]
            (lambda: self.admin.create_token("ci", "viewer", expires_in_seconds=1.5), r"create_token\(expires_in_seconds=\.\.\.\) is an int, got float"),  # type: ignore[arg-type]
            (lambda: self.admin.revoke_token({"id": "tok-1", "token": "secret"}), r"a token id is a str, got dict .*: pass token\[\"id\"\]"),  # type: ignore[arg-type]
        ]
        for call, said in cases:
            with self.assertRaisesRegex(TypeError, said):
                call()
        with self.assertRaises(runtrail.RuntrailError) as scope:
            self.admin.create_token("ci", "root")
        self.assertEqual(scope.exception.code, "invalid_request")
        self.assertIn("scope", scope.exception.message)
        self.assertEqual(len(self.admin.tokens()), before)


if __name__ == "__main__":
    unittest.main()
