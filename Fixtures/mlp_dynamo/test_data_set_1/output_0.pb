BoutputJ
Œ->ÐŽ›½