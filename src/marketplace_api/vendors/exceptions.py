from marketplace_api.errors import Conflict, NotFound, UnprocessableEntity


class VendorProfileNotFound(NotFound):
    code = "vendor_profile_not_found"
    title = "No vendor profile yet"


class VendorNotFound(NotFound):
    code = "vendor_not_found"
    title = "Vendor not found"


class VendorProfileRequired(Conflict):
    code = "vendor_profile_required"
    title = "Create your vendor profile first (PUT /v1/vendor/profile)"


class VendorCountryLocked(Conflict):
    code = "vendor_country_locked"
    title = "The country cannot change once the Stripe account exists"


class StripeAccountMissing(Conflict):
    code = "stripe_account_missing"
    title = "No Stripe account yet: call POST /v1/vendor/payments/setup first"


class VendorAccountDisconnected(Conflict):
    code = "vendor_account_disconnected"
    title = "The Stripe account was disconnected from the platform"


class VendorNotOnboarded(Conflict):
    code = "vendor_not_onboarded"
    title = "Finish Stripe onboarding first"


class PayoutScheduleRejected(UnprocessableEntity):
    code = "payout_schedule_rejected"
    title = "Stripe refused this payout schedule for the account"


class UnsupportedCurrency(UnprocessableEntity):
    code = "unsupported_currency"
    title = "Unsupported currency"
