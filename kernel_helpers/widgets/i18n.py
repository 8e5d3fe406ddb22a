# ruff: noqa: RUF001 (Persian letters are not look-alikes of Latin ones here)
"""Labels of the panels: English as written, or another language's table.

Panels pass every text they show through ``Labels``; ``lang="fa"`` gives the Persian
table (a right-to-left language, with ``direction="rtl"``); ``labels={...}`` overrides
single texts.
"""

from __future__ import annotations

from collections.abc import Mapping

PERSIAN: dict[str, str] = {
    "Dashboard": "داشبورد",
    "Jobs": "کارها",
    "Active jobs": "کارهای فعال",
    "Quick start": "شروع سریع",
    "Monitoring": "پایش",
    "Models and assets": "مدل‌ها و داده‌ها",
    "Hardware": "سخت‌افزار",
    "Compare runs": "مقایسه اجراها",
    "Name": "نام",
    "State": "وضعیت",
    "Progress": "پیشرفت",
    "ETA": "زمان باقی‌مانده",
    "Epoch": "دوره",
    "Loss": "خطا",
    "Accuracy": "دقت",
    "Duration": "مدت",
    "Artifacts": "خروجی‌ها",
    "Pause": "توقف موقت",
    "Resume": "ادامه",
    "Stop": "توقف",
    "Clone with edits": "کپی با تغییر",
    "Details": "جزئیات",
    "Start": "شروع",
    "Refresh": "تازه‌سازی",
    "live": "زنده",
    "connecting": "در حال اتصال",
    "reconnecting": "در حال اتصال دوباره",
    "gone": "سرور در دسترس نیست",
    "stopped": "متوقف",
    "CPU": "پردازنده",
    "Memory": "حافظه",
    "Network": "شبکه",
    "GPU": "پردازنده گرافیکی",
    "received": "دریافتی",
    "sent": "ارسالی",
    "none on this machine": "در این دستگاه نیست",
    "Alerts": "هشدارها",
    "Logs": "گزارش‌ها",
    "Upload": "بارگذاری",
    "Import": "وارد کردن",
    "Delete": "حذف",
    "Restore": "بازگردانی",
    "Trash": "سطل زباله",
    "Download": "دریافت",
    "Size": "اندازه",
    "Type": "نوع",
    "Tags": "برچسب‌ها",
    "Template": "الگو",
    "Estimated time": "زمان تخمینی",
    "Recent activity": "فعالیت‌های اخیر",
    "No jobs yet.": "هنوز کاری نیست.",
    "read-only": "فقط خواندنی",
    "runs on": "در حال اجرا روی",
    "GPUs": "پردازنده‌های گرافیکی",
}

TABLES: dict[str, Mapping[str, str]] = {"fa": PERSIAN}


class Labels:
    """``labels("Pause")`` -> the text to show."""

    def __init__(self, lang: str | None = None, overrides: Mapping[str, str] | None = None):
        self.lang = lang or "en"
        self.table = {**TABLES.get(self.lang, {}), **(overrides or {})}

    def __call__(self, text: str) -> str:
        return self.table.get(text, text)
