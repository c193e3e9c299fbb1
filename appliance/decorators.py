"""Access rules for the node's pages."""

from django.contrib.auth.decorators import user_passes_test

staff_required = user_passes_test(lambda user: user.is_active and user.is_staff, login_url="login")
"""Only active staff get in; everyone else goes to the staff login page."""
