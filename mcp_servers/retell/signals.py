"""Cache invalidation for the inbound-call answer: model signals call the service, nothing else."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from askpro.models import Branch, Company, PhoneNumber, Service

from .inbound import inbound_cache_forget_company, inbound_cache_forget_numbers


@receiver(pre_save, sender=PhoneNumber, dispatch_uid="webhooks_inbound_phone_renamed")
def _phone_number_renamed(sender, instance, **kwargs):
    if instance.pk:
        old = PhoneNumber.objects.filter(pk=instance.pk).values_list("number", flat=True).first()
        if old and old != instance.number:
            inbound_cache_forget_numbers([old])


@receiver(post_save, sender=PhoneNumber, dispatch_uid="webhooks_inbound_phone_saved")
@receiver(post_delete, sender=PhoneNumber, dispatch_uid="webhooks_inbound_phone_deleted")
def _phone_number_changed(sender, instance, **kwargs):
    number = instance.number
    # Forget now and again after commit, so a concurrent reader cannot re-cache the old answer.
    inbound_cache_forget_numbers([number])
    transaction.on_commit(lambda: inbound_cache_forget_numbers([number]))


@receiver(post_save, sender=Branch, dispatch_uid="webhooks_inbound_branch_saved")
@receiver(post_delete, sender=Branch, dispatch_uid="webhooks_inbound_branch_deleted")
@receiver(post_save, sender=Service, dispatch_uid="webhooks_inbound_service_saved")
@receiver(post_delete, sender=Service, dispatch_uid="webhooks_inbound_service_deleted")
@receiver(post_save, sender=Company, dispatch_uid="webhooks_inbound_company_saved")
def _company_records_changed(sender, instance, **kwargs):
    company_id = instance.pk if sender is Company else instance.company_id
    extra = [instance.phone_number] if sender is Branch and instance.phone_number else []
    inbound_cache_forget_numbers(extra)
    transaction.on_commit(lambda: inbound_cache_forget_company(company_id))
