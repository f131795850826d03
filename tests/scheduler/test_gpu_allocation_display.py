"""Which GPUs a job gets is said per node (issue 16): the node API's ``gpu_allocation`` and
the board's tag, "exact devices (DRA)" or "per count on the node", in English and Japanese."""

from __future__ import annotations

import pytest
from django.test import Client

from scheduler.models import Node

pytestmark = pytest.mark.django_db


@pytest.fixture
def dra_node(nodes):
    Node.objects.filter(name="a100-01").update(gpu_allocation="dra")
    return nodes


def test_the_node_api_says_how_gpus_are_allocated(alice, dra_node):
    body = alice.client().get("/api/v1/nodes/").json()
    modes = {n["name"]: n["gpu_allocation"] for n in body["results"]}
    assert modes == {"a100-01": "dra", "tesla-01": "device-plugin", "tesla-02": "device-plugin"}
    one = alice.client().get("/api/v1/nodes/a100-01/").json()
    assert one["gpu_allocation"] == "dra"


def test_the_schema_documents_the_field(alice):
    schema = alice.client().get("/api/schema/?format=json").json()
    node = schema["components"]["schemas"]["Node"]["properties"]["gpu_allocation"]
    assert "device-plugin" in str(node)


@pytest.mark.parametrize(
    ("language", "exact", "per_count"),
    [
        ("en", "exact devices (DRA)", "per count on the node (device plugin"),
        ("ja", "デバイス指定", "ノード内の台数単位"),
    ],
)
def test_the_board_says_it_per_node(alice, dra_node, language, exact, per_count):
    alice.user.language = language
    alice.user.save()
    client = Client()
    client.force_login(alice.user)
    page = client.get("/").content.decode()
    assert page.count(exact) == 1  # a100-01
    assert page.count(per_count) == 2  # the two V100 servers
