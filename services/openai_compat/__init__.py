"""The OpenAI-compatible ``/v1`` API's logic: writing a chat completion request down as a dialog turn
(``turns``), and turning that dialog's events into OpenAI's response objects (``responses``)."""
