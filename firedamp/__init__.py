"""What every part of firedamp shares and none owns: edge, models, hardware and control all import it; it imports none of them."""
