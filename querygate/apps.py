from django.apps import AppConfig


class QueryGateConfig(AppConfig):
    name = "querygate"
    verbose_name = "Query gate"
