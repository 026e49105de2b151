"""The tenant domain: a Company (the tenant) and the records the MCP servers work on.

Every record carries its company so that every tenant-scoped lookup is one indexed filter.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from .crypto import EncryptedTextField, SecretsModel


class Plan(models.Model):
    """A subscription plan; its limits drive the orchestrator's per-tenant rate limiting."""

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    requests_per_minute = models.PositiveIntegerField(
        default=120, help_text="Calls per minute per service for one tenant."
    )
    max_concurrent_calls = models.PositiveIntegerField(
        default=20, help_text="Calls in flight at once for one tenant."
    )

    def __str__(self) -> str:
        return self.name


class Company(SecretsModel):
    """A tenant: one business using the platform, with its own upstream credentials.

    The credentials are write-only for people: no page shows them once stored (see
    askpro.admin_secrets); SecretsModel records when each was last changed.
    """

    class BillingStatus(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        UNPAID = "unpaid"
        CANCELED = "canceled"

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    timezone = models.CharField(max_length=64, default="Europe/Berlin")
    currency = models.CharField(max_length=3, default="EUR")
    language = models.CharField(
        max_length=2,
        choices=[("de", "Deutsch"), ("en", "English")],
        default="de",
        help_text="Language of messages to customers who have not chosen their own.",
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    billing_status = models.CharField(
        max_length=20, choices=BillingStatus.choices, default=BillingStatus.TRIALING
    )
    # Upstream credentials, encrypted at rest (see askpro.crypto).
    calcom_api_key = EncryptedTextField("Cal.com API key", blank=True, default="")
    retell_api_key = EncryptedTextField("Retell API key", blank=True, default="")
    retell_agent_id = models.CharField(max_length=100, blank=True, default="")
    calcom_webhook_secret = EncryptedTextField("Cal.com webhook secret", blank=True, default="")
    stripe_secret_key = EncryptedTextField(
        "Stripe secret key",
        blank=True,
        default="",
        help_text="Only for a tenant with its own Stripe account; else the platform's.",
    )
    stripe_webhook_secret = EncryptedTextField("Stripe webhook secret", blank=True, default="")
    stripe_customer_id = models.CharField(max_length=100, blank=True, default="")
    stripe_subscription_id = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Branch(models.Model):
    """A location of a company, reached through its phone numbers."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=200)
    slug = models.SlugField()
    phone_number = models.CharField(max_length=32, blank=True, default="")
    address = models.CharField(max_length=300, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="")
    business_hours = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    retell_agent_id = models.CharField(max_length=100, blank=True, default="")
    calcom_event_type_id = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "branches"
        ordering = ["company_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "slug"], name="branch_unique_slug_per_company")
        ]

    def __str__(self) -> str:
        return self.name


class Staff(models.Model):
    """A bookable person at a branch."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="staff")
    branch = models.ForeignKey(Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="staff")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    is_active = models.BooleanField(default=True)
    is_bookable = models.BooleanField(default=True)
    calcom_user_id = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "staff"
        ordering = ["company_id", "name"]

    def __str__(self) -> str:
        return self.name


class WorkingHours(models.Model):
    """One stretch of a staff member's regular working week (Monday 09:00-13:00, say); a day
    may hold several. Utilisation is booked minutes against these; a staff member without
    any has no utilisation figure (never an assumed week)."""

    class Weekday(models.IntegerChoices):
        MONDAY = 1
        TUESDAY = 2
        WEDNESDAY = 3
        THURSDAY = 4
        FRIDAY = 5
        SATURDAY = 6
        SUNDAY = 7

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="working_hours")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="working_hours")
    # ISO weekday (1 = Monday), as PostgreSQL's EXTRACT(ISODOW ...) counts.
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    starts = models.TimeField(help_text="Local time in the company's time zone")
    ends = models.TimeField(help_text="Local time; after starts (no shift across midnight)")

    class Meta:
        verbose_name_plural = "working hours"
        ordering = ["staff_id", "weekday", "starts"]
        indexes = [models.Index(fields=["company", "staff"], name="workinghours_company_staff")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends__gt=models.F("starts")), name="workinghours_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(weekday__gte=1, weekday__lte=7), name="workinghours_iso_weekday"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id} {self.get_weekday_display()} {self.starts:%H:%M}-{self.ends:%H:%M}"


class Service(models.Model):
    """Something a company sells by appointment (a haircut, a consultation)."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="services")
    branch = models.ForeignKey(
        Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="services"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    duration_minutes = models.PositiveIntegerField(default=30, validators=[MinValueValidator(5)])
    price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    is_active = models.BooleanField(default=True)
    calcom_event_type_id = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["company_id", "name"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """A caller or client of a company, identified by phone within that company."""

    class Channel(models.TextChoices):
        WHATSAPP = "whatsapp", "WhatsApp"
        SMS = "sms", "SMS"
        EMAIL = "email", "Email"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="customers")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    # Blank: the company's language / the company's channel order decides.
    language = models.CharField(
        max_length=2, choices=[("de", "Deutsch"), ("en", "English")], blank=True, default=""
    )
    preferred_channel = models.CharField(max_length=10, choices=Channel.choices, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company_id", "name"]
        indexes = [models.Index(fields=["company", "phone"], name="customer_company_phone")]

    def __str__(self) -> str:
        return self.name


class Call(models.Model):
    """A phone call answered by the Retell agent for a company."""

    class Status(models.TextChoices):
        REGISTERED = "registered"
        ONGOING = "ongoing"
        ENDED = "ended"
        ERROR = "error"

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="calls")
    branch = models.ForeignKey(Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls")
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    retell_call_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    agent_id = models.CharField(max_length=100, blank=True, default="")
    from_number = models.CharField(max_length=32, blank=True, default="")
    to_number = models.CharField(max_length=32, blank=True, default="")
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ENDED)
    disconnection_reason = models.CharField(max_length=64, blank=True, default="")
    call_successful = models.BooleanField(null=True, blank=True)
    started_at = models.DateTimeField(db_index=False)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_sec = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    transcript = models.TextField(blank=True, default="")
    summary = models.TextField(blank=True, default="")
    sentiment = models.CharField(max_length=20, blank=True, default="")
    analysis = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["company", "started_at"], name="call_company_started"),
            models.Index(fields=["company", "status"], name="call_company_status"),
            models.Index(fields=["company", "from_number"], name="call_company_from"),
        ]

    def __str__(self) -> str:
        return f"{self.from_number} → {self.to_number} ({self.started_at:%Y-%m-%d %H:%M})"


class Appointment(models.Model):
    """A booking, usually made by the phone agent through Cal.com."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        CONFIRMED = "confirmed"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        NO_SHOW = "no_show"
        FAILED = "failed"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="appointments")
    branch = models.ForeignKey(
        Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    staff = models.ForeignKey(
        Staff, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    service = models.ForeignKey(
        Service, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    call = models.ForeignKey(
        Call, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    calcom_booking_id = models.PositiveBigIntegerField(null=True, blank=True)
    calcom_booking_uid = models.CharField(max_length=100, null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    notes = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [
            models.Index(fields=["company", "starts_at"], name="appt_company_starts"),
            models.Index(fields=["company", "status"], name="appt_company_status"),
            # Bookings made in a period (analytics: lead time, bookings per day).
            models.Index(fields=["company", "created_at"], name="appt_company_created"),
            # A customer's visits in order (analytics: first visit, cohorts, customers at risk).
            models.Index(fields=["company", "customer", "starts_at"], name="appt_company_customer_starts"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["calcom_booking_uid"],
                condition=Q(calcom_booking_uid__isnull=False),
                name="appt_unique_calcom_uid",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gte=models.F("starts_at")), name="appt_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} ({self.status})"


class PhoneNumber(models.Model):
    """A number that rings the agent; it tells which company and branch a call is for."""

    class Type(models.TextChoices):
        DIRECT = "direct"
        HOTLINE = "hotline"
        OFFICE = "office"
        RETELL = "retell"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="phone_numbers")
    branch = models.ForeignKey(
        Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="phone_numbers"
    )
    number = models.CharField(max_length=32, unique=True, help_text="E.164, e.g. +4930123456")
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.RETELL)
    is_active = models.BooleanField(default=True)
    is_primary = models.BooleanField(default=False)
    retell_phone_id = models.CharField(max_length=100, blank=True, default="")
    retell_agent_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["company_id", "number"]
        indexes = [models.Index(fields=["company", "is_active"], name="phone_company_active")]

    def __str__(self) -> str:
        return self.number


class Invoice(models.Model):
    """A Stripe invoice issued to a company's customer (or the company itself)."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        UNCOLLECTIBLE = "uncollectible"
        VOID = "void"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="invoices")
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    # The visit the invoice bills, when there is one: revenue per branch, service and staff
    # member is read through it (analytics); an invoice without one counts as unattributed.
    appointment = models.ForeignKey(
        "Appointment", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    stripe_invoice_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    number = models.CharField(max_length=50, blank=True, default="")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3, default="EUR")
    subtotal = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    due_date = models.DateField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["company", "status"], name="invoice_company_status"),
            models.Index(fields=["company", "paid_at"], name="invoice_company_paid"),
        ]

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id or f"invoice {self.pk}"
