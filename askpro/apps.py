from django.apps import AppConfig


class AskproConfig(AppConfig):
    name = "askpro"
    verbose_name = "Tenants"
