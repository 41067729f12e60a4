import Onyx
print("onyx")
